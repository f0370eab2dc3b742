"""Conformance: every protocol a service port declares (HTTP/2, gRPC, TCP) under mTLS.

Istio's reachability suite runs HTTP, HTTP/2, gRPC and TCP under STRICT mTLS,
and an opaque TCP port is where meshes leak plaintext; these checks do the
same against team-b's echo, whose service declares ``http`` 80, ``http2``
81, ``grpc`` 7070 and ``tcp`` 9090 (ports found from the service, never
hard-coded here). Deny judgements always have an allowed request in the same
window; wire judgements a plaintext control that sees the marker.
Deterministic: every request must behave (the false-alarm rate is the
network's); the gRPC split keeps the exact binomial design of the HTTP splits.
"""

from __future__ import annotations

import pytest

from meshproof.conformance import protocols as proto
from meshproof.conformance.check import check
from meshproof.conformance.pods import OUTSIDE, client, echo
from meshproof.conformance.splits import judge_weights
from meshproof.intent import AccessMode, AccessRule, HTTPMatch, MTLSMode, TrafficSplit
from meshproof.probe import all_denied, all_ok, denial_evidence, summary
from meshproof.targets.model import GRPC_UNARY, TLSFiles

pytestmark = [pytest.mark.mesh]

N = 6
#: What app-side protocol each wire protocol must arrive as (HTTP/2 end to end).
ARRIVES_AS = {"http2": "HTTP/2", "grpc": "gRPC"}


def mode_b(mesh, mode: str) -> None:
    mesh.wait_programmed(mesh.apply(MTLSMode(mode, namespace="team-b")))


@check("protocols-meshed-client",
       "under STRICT and under PERMISSIVE, a meshed client reaches team-b's echo over "
       "HTTP/2, gRPC (unary and a server stream) and TCP (banner and echo); HTTP/2 and "
       "gRPC reach the app as HTTP/2",
       features=["protocol-http2", "protocol-grpc", "protocol-tcp"],
       catches=["h2-downgraded", "endpoints-first-port-only"], intents=["MTLSMode"])
def test_meshed_client_every_protocol(target, mesh, verdict):
    a, b = client(target, "team-a"), echo(target, "team-b")
    verdict.touch(a, b)
    ok = []
    for mode in ("STRICT", "PERMISSIVE"):
        mode_b(mesh, mode)
        got = proto.to_service(target, a, "team-b", "echo", N, timeout_s=3)
        got["grpc-stream"] = proto.send_as(target, a, "grpc", "echo.team-b",
                                           proto.service_ports(target, "team-b", "echo")
                                           ["grpc"].port, N, stream=True, timeout_s=3)
        for name, rs in got.items():
            ok.append(verdict.exact(f"{mode}: {name} answered", all_ok(rs), summary(rs)))
        ok.append(verdict.exact(
            f"{mode}: server stream delivered {proto.STREAM} messages each",
            all(r.messages == proto.STREAM for r in got["grpc-stream"]),
            {"messages": [r.messages for r in got["grpc-stream"]]}))
        for name, seen in ARRIVES_AS.items():
            ok.append(verdict.exact(f"{mode}: {name} reached the app as {seen}",
                                    proto.app_saw(got[name], seen),
                                    {"app_saw": [r.json.get("protocol") for r in got[name]]}))
        ok.append(verdict.exact(f"{mode}: tcp banner names team-b's echo",
                                all(r.headers.get("x-namespace") == "team-b"
                                    for r in got["tcp"]),
                                {"banners": sorted({r.banner for r in got["tcp"]})}))
    assert all(ok), verdict.lines


@check("mtls-modes-every-port",
       "STRICT refuses plaintext on every port of the pod (HTTP, HTTP/2, gRPC, TCP; by "
       "service name and by pod address) while a meshed client reaches every port; "
       "PERMISSIVE then accepts plaintext on every port",
       features=["mtls-strict", "mtls-permissive", "protocol-http2", "protocol-grpc",
                 "protocol-tcp"],
       catches=["plaintext-other-port", "plaintext-accepted", "endpoints-first-port-only"], intents=["MTLSMode"])
def test_strict_every_port(target, mesh, verdict):
    a, out, b = client(target, "team-a"), client(target, OUTSIDE), echo(target, "team-b")
    verdict.touch(b)
    mode_b(mesh, "STRICT")
    meshed = proto.to_service(target, a, "team-b", "echo", N, timeout_s=3)
    by_name = proto.to_service(target, out, "team-b", "echo", N, timeout_s=2)
    by_pod = proto.to_pod(target, out, b, N, timeout_s=2)
    ok = [verdict.exact(f"STRICT: meshed {k} answered (positive control)", all_ok(rs),
                        summary(rs)) for k, rs in meshed.items()]
    ok += [verdict.exact(f"STRICT: plaintext {k} via the service refused", all_denied(rs),
                         denial_evidence(rs)) for k, rs in by_name.items()]
    ok += [verdict.exact(f"STRICT: plaintext to pod port {k} refused", all_denied(rs),
                         denial_evidence(rs)) for k, rs in by_pod.items()]
    mode_b(mesh, "PERMISSIVE")
    plain = proto.to_pod(target, out, b, N, timeout_s=3)
    ok += [verdict.exact(f"PERMISSIVE: plaintext to pod port {k} accepted", all_ok(rs),
                         summary(rs)) for k, rs in plain.items()]
    assert all(ok), verdict.lines


def _wire(target, src, dst, protocol: str, host: str, port: int, tag: str):
    """Send N requests carrying a marker while capturing between ``src`` and ``dst``."""
    marker = f"MESHPROOF-WIRE-{protocol.upper()}-{tag}-7e3a"
    cid = target.capture_start(src, dst)
    # The marker rides in the body: HPACK may Huffman-code a header value. One request at
    # a time: concurrent HTTP/2 streams share a connection and their frames share TLS
    # records, so 2 records per request holds only for requests in sequence.
    sent = proto.send_as(target, src, protocol, host, port, N, body=marker + "\n",
                         timeout_s=3, concurrency=1)
    return sent, target.capture_stop(cid, marker=marker)


@check("mtls-wire-every-protocol",
       "between meshed pods, HTTP/2, gRPC and TCP cross the wire as TLS records only, under "
       "STRICT and under PERMISSIVE; the same markers are seen in plaintext when PERMISSIVE "
       "lets the unmeshed client in (so an empty or misplaced capture cannot pass)",
       features=["mtls-strict", "mtls-permissive", "protocol-http2", "protocol-grpc",
                 "protocol-tcp"],
       catches=["tcp-upstream-plaintext", "endpoints-first-port-only"], intents=["MTLSMode"], target_needs=["capture"])
def test_wire_every_protocol(target, mesh, verdict):
    a, b, out = client(target, "team-a"), echo(target, "team-b"), client(target, OUTSIDE)
    ports = proto.service_ports(target, "team-b", "echo")
    ok = []
    for mode in ("STRICT", "PERMISSIVE"):
        mode_b(mesh, mode)
        for name in ("http2", "grpc", "tcp"):
            sent, cap = _wire(target, a, b, name, "echo.team-b", ports[name].port, mode)
            ok.append(verdict.exact(f"{mode}: meshed {name} answered", all_ok(sent),
                                    summary(sent)))
            ok.append(verdict.exact(f"{mode}: meshed {name}: >= {2 * N} TLS records, 0 marker",
                                    cap.tls_records >= 2 * N and cap.marker_hits == 0,
                                    {"capture": cap}))
    for name in ("http2", "grpc", "tcp"):
        sent, cap = _wire(target, out, b, name, b.ip, b.port_for(name), "PLAIN")
        ok.append(verdict.exact(f"plaintext control: {name} answered and its marker seen "
                                f">= {N} times", all_ok(sent) and cap.marker_hits >= N
                                and cap.tls_records == 0, {"capture": cap, **summary(sent)}))
    assert all(ok), verdict.lines


@check("protocols-caller-identity",
       "over HTTP/2 and gRPC the app sees the meshed caller's SPIFFE ID "
       "(x-forwarded-client-cert); an unmeshed caller's forged header is stripped",
       features=["xfcc-spiffe", "protocol-http2", "protocol-grpc"],
       catches=["xfcc-h2-unset", "endpoints-first-port-only"], intents=["MTLSMode"])
def test_caller_identity_h2_grpc(target, mesh, verdict):
    a, out, b = client(target, "team-a"), client(target, OUTSIDE), echo(target, "team-b")
    verdict.touch(b)
    mode_b(mesh, "PERMISSIVE")
    ports = proto.service_ports(target, "team-b", "echo")
    forged = {"x-forwarded-client-cert": f"URI={a.identity}"}
    ok = []
    for name in ("http2", "grpc"):
        port = ports[name].port
        seen = proto.send_as(target, a, name, "echo.team-b", port, N, timeout_s=3)
        fake = proto.send_as(target, out, name, "echo.team-b", port, N, timeout_s=3,
                             headers=forged)
        ok.append(verdict.exact(f"{name}: caller's SPIFFE ID seen",
                                all_ok(seen) and all(f"URI={a.identity}" in proto.xfcc(r)
                                                     for r in seen),
                                {"xfcc": sorted({proto.xfcc(r) for r in seen}),
                                 **summary(seen)}))
        ok.append(verdict.exact(f"{name}: forged header from the unmeshed caller stripped",
                                all_ok(fake) and not any(proto.xfcc(r) for r in fake),
                                {"xfcc": sorted({proto.xfcc(r) for r in fake}),
                                 **summary(fake)}))
    assert all(ok), verdict.lines


@check("protocols-h2-over-tls",
       "a client speaking HTTP/2 over TLS (ALPN h2) with a valid mesh certificate straight "
       "to a STRICT pod's HTTP/2 port is served as HTTP/2 and identified by its certificate",
       features=["protocol-http2", "mtls-strict", "xfcc-spiffe"],
       catches=["alpn-h2-unoffered"], intents=["MTLSMode"],
       target_needs=["put-file", "probe-tls"], mesh_needs=["issue-certificate"])
def test_h2_over_tls(target, mesh, verdict):
    mode_b(mesh, "STRICT")
    src, b = client(target, OUTSIDE), echo(target, "team-b")
    verdict.touch(b)
    issued = mesh.issue_certificate(client(target, "team-a"), ttl_s=60)
    files = {k: target.put_file(src, f"h2tls-{k}.pem", v)
             for k, v in (("cert", issued.cert), ("key", issued.key), ("ca", issued.root))}
    tls = TLSFiles(cert=files["cert"], key=files["key"], ca=files["ca"])
    rs = proto.send_as(target, src, "http2", b.ip, b.port_for("http2"), N, timeout_s=3,
                       tls=tls, scheme="https")
    ok = [verdict.exact("HTTP/2 over TLS answered (ALPN h2)", all_ok(rs), summary(rs)),
          verdict.exact("served as HTTP/2", proto.app_saw(rs, "HTTP/2"),
                        {"app_saw": [r.json.get("protocol") for r in rs]}),
          verdict.exact("identified by its certificate",
                        bool(rs) and all(f"URI={issued.identity}" in proto.xfcc(r) for r in rs),
                        {"xfcc": sorted({proto.xfcc(r) for r in rs})})]
    assert all(ok), verdict.lines


@check("access-tcp-l4",
       "access mode smi on a TCP port: a TrafficTarget with no route conditions lets "
       "team-a connect; team-c, allowed only GET /echo (an HTTP route), and the unmeshed "
       "client are refused at L4, while team-c still gets its HTTP route in the same window",
       features=["access-control", "access-control-tcp", "protocol-tcp"],
       catches=["tcp-authz-open", "endpoints-first-port-only"], intents=["AccessMode", "AccessRule", "HTTPRouteGroup"])
def test_access_tcp_l4(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/tcp-team-a", "team-b/echo", ("team-a/client",)),
        AccessRule("team-b/http-team-c", "team-b/echo", ("team-c/client",),
                   (HTTPMatch(path_regex="/echo", methods=("GET",)),))]))
    b = echo(target, "team-b")
    verdict.touch(b)
    tcp = proto.service_ports(target, "team-b", "echo")["tcp"].port
    allowed = proto.send_as(target, client(target, "team-a"), "tcp", "echo.team-b", tcp, N,
                            timeout_s=3)
    c = client(target, "team-c")
    http_only = proto.send_as(target, c, "tcp", "echo.team-b", tcp, N, timeout_s=3)
    c_http = proto.send_as(target, c, "http", "echo.team-b",
                           proto.service_ports(target, "team-b", "echo")["http"].port, N)
    outside = proto.send_as(target, client(target, OUTSIDE), "tcp", b.ip, b.port_for("tcp"),
                            N, timeout_s=3)
    ok = [verdict.exact("team-a -> tcp allowed (no route conditions)", all_ok(allowed),
                        summary(allowed)),
          verdict.exact("team-c -> GET /echo allowed by its HTTP rule (positive control)",
                        all_ok(c_http), summary(c_http)),
          verdict.exact("team-c -> tcp refused (an HTTP-only rule allows nothing at L4)",
                        all_denied(http_only), denial_evidence(http_only)),
          verdict.exact("outside -> tcp refused (no identity)", all_denied(outside),
                        denial_evidence(outside))]
    assert all(ok), verdict.lines


@check("split-grpc-90-10",
       "TrafficSplit reviews-v1 90 / v2 10 holds for gRPC calls to the reviews gRPC port, "
       "within 10 points, over pooled HTTP/2 connections (the split is per call)",
       features=["traffic-split", "protocol-grpc"], catches=["weights-ignored", "endpoints-first-port-only"],
       intents=["TrafficSplit"])
def test_split_grpc(target, mesh, verdict):
    port = proto.service_ports(target, "bookinfo", "reviews")["grpc"].port
    judge_weights(target, mesh, verdict,
                  [TrafficSplit("bookinfo/reviews", (("reviews-v1", 90), ("reviews-v2", 10)))],
                  {"v1": 90, "v2": 10}, url=f"http://reviews:{port}{GRPC_UNARY}",
                  protocol="grpc", fresh=False)
