"""Conformance: mTLS modes, identities, certificate validation, and the wire.

Deny checks always send an allowed request in the same window (a dead
destination must not pass as "refused"), and the wire check sees the
plaintext marker when plaintext is allowed (an empty or misplaced capture
must not pass as "encrypted"). These checks are deterministic: every
request must behave, so their false-alarm rate is that of the network.
"""

from __future__ import annotations

import time

import pytest

from meshproof.conformance.check import check
from meshproof.conformance.pods import OUTSIDE, client, echo
from meshproof.conformance.tls import put_tls_files, tls_probe
from meshproof.intent import MTLSMode
from meshproof.pki import foreign_cert
from meshproof.probe import all_denied, all_ok, denial_evidence, order, send, summary

pytestmark = [pytest.mark.mesh]

ECHO_B = "http://echo.team-b/echo"
N = 10


def strict_b(mesh, mode: str = "STRICT") -> None:
    mesh.wait_programmed(mesh.apply(MTLSMode(mode, namespace="team-b")))


@check("mtls-strict-refuses-plaintext",
       "STRICT refuses plaintext from an unmeshed pod and from a capture-bypassing process, "
       "while a meshed client succeeds in the same window",
       features=["mtls-strict"], catches=["plaintext-accepted"], intents=["MTLSMode"],
       mesh_needs=["bypass-sidecar"])
def test_strict_refuses_plaintext(target, mesh, verdict):
    strict_b(mesh)
    a = client(target, "team-a")
    verdict.touch(echo(target, "team-b"), a)
    meshed = send(target, a, ECHO_B, N, timeout_s=2)
    outside = send(target, client(target, OUTSIDE), ECHO_B, N, timeout_s=2)
    bypass = mesh.bypass_probe(a, order(ECHO_B, N, timeout_s=2))
    ok = [verdict.exact("meshed client allowed (positive control)", all_ok(meshed),
                        summary(meshed)),
          verdict.exact("plaintext from outside refused", all_denied(outside),
                        denial_evidence(outside)),
          verdict.exact("plaintext bypassing capture refused", all_denied(bypass),
                        denial_evidence(bypass))]
    assert all(ok), verdict.lines


@check("mtls-permissive-accepts-both", "PERMISSIVE accepts plaintext and mTLS callers",
       features=["mtls-permissive"], intents=["MTLSMode"])
def test_permissive_accepts_both(target, mesh, verdict):
    strict_b(mesh, "PERMISSIVE")
    verdict.touch(echo(target, "team-b"))
    meshed = send(target, client(target, "team-a"), ECHO_B, N)
    plain = send(target, client(target, OUTSIDE), ECHO_B, N)
    ok = [verdict.exact("mTLS caller accepted", all_ok(meshed), summary(meshed)),
          verdict.exact("plaintext caller accepted", all_ok(plain), summary(plain))]
    assert all(ok), verdict.lines


@check("mtls-workload-over-namespace", "a workload's PERMISSIVE beats its namespace's STRICT",
       features=["mtls-workload-override"], intents=["MTLSMode"])
def test_workload_mode_beats_namespace_mode(target, mesh, verdict):
    mesh.apply(MTLSMode("STRICT", namespace="team-b"))
    mesh.wait_programmed(mesh.apply(MTLSMode("PERMISSIVE", namespace="team-b",
                                             workload="echo")))
    plain = send(target, client(target, OUTSIDE), ECHO_B, N)
    assert verdict.exact("plaintext accepted by the PERMISSIVE workload",
                         all_ok(plain), summary(plain)), verdict.lines


@check("mtls-workload-strict-over-namespace",
       "a workload's STRICT beats its namespace's PERMISSIVE (the other direction of the "
       "precedence rule): plaintext refused by that workload, accepted by its neighbour",
       features=["mtls-workload-override"], catches=["workload-strict-ignored"],
       intents=["MTLSMode"])
def test_workload_strict_beats_namespace_permissive(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        MTLSMode("PERMISSIVE", namespace="team-b"),
        MTLSMode("STRICT", namespace="team-b", workload="echo")]))
    verdict.touch(echo(target, "team-b"))
    out, a = client(target, OUTSIDE), client(target, "team-a")
    plain = send(target, out, ECHO_B, N, timeout_s=2)
    meshed = send(target, a, ECHO_B, N)
    # team-b's client is the same namespace's other workload: PERMISSIVE there.
    neighbour = send(target, out, f"http://{client(target, 'team-b').ip}:9080/echo", N)
    ok = [verdict.exact("meshed caller accepted (positive control)", all_ok(meshed),
                        summary(meshed)),
          verdict.exact("plaintext refused by the STRICT workload", all_denied(plain),
                        denial_evidence(plain)),
          verdict.exact("plaintext accepted by the namespace's other workload (PERMISSIVE)",
                        all_ok(neighbour), summary(neighbour))]
    assert all(ok), verdict.lines


@check("mtls-caller-identity", "the server sees the caller's SPIFFE ID; an unmeshed caller "
       "cannot forge one", features=["xfcc-spiffe"], catches=["xfcc-forwarded"], intents=[])
def test_app_sees_the_callers_spiffe_id(target, mesh, verdict):
    a = client(target, "team-a")
    r = send(target, a, ECHO_B, 1)[0]
    xfcc = str(dict(r.json.get("headers") or {}).get("x-forwarded-client-cert", ""))
    forged = send(target, client(target, OUTSIDE), ECHO_B, 1, headers={
        "x-forwarded-client-cert": f"URI={a.identity}"})[0]
    forged_headers = dict(forged.json.get("headers") or {})
    ok = [verdict.exact("caller's SPIFFE ID seen", f"URI={a.identity}" in xfcc,
                        {"xfcc": xfcc}),
          verdict.exact("forged header stripped",
                        forged.status == 200 and "x-forwarded-client-cert" not in forged_headers,
                        {"status": forged.status, "headers": forged_headers})]
    assert all(ok), verdict.lines


@check("mtls-wire-encrypted", "between meshed pods the wire carries TLS records and no "
       "plaintext; the same marker is seen when plaintext is allowed",
       features=["mtls-strict", "mtls-permissive"], intents=["MTLSMode"],
       target_needs=["capture"])
def test_wire_is_encrypted(target, mesh, verdict):
    marker = "MESHPROOF-WIRE-MARKER-51c2"
    headers = {"x-marker": marker}
    a, b, out = client(target, "team-a"), echo(target, "team-b"), client(target, OUTSIDE)
    strict_b(mesh)
    cid = target.capture_start(a, b)
    sent = send(target, a, ECHO_B, N, headers=headers)
    meshed = target.capture_stop(cid, marker=marker)
    strict_b(mesh, "PERMISSIVE")
    cid = target.capture_start(out, b)
    sent_plain = send(target, out, ECHO_B, N, headers=headers)
    plain = target.capture_stop(cid, marker=marker)
    ok = [verdict.exact("requests answered", all_ok(sent) and all_ok(sent_plain),
                        {"meshed": summary(sent), "plain": summary(sent_plain)}),
          verdict.exact(f"meshed: >= {2 * N} TLS records, 0 marker bytes",
                        meshed.tls_records >= 2 * N and meshed.marker_hits == 0,
                        {"capture": meshed}),
          verdict.exact(f"plaintext control: marker seen >= {N} times",
                        plain.marker_hits >= N and plain.tls_records == 0,
                        {"capture": plain})]
    assert all(ok), verdict.lines


@check("mtls-impostor-server-refused", "a client refuses a server presenting a valid mesh "
       "certificate for another identity", features=["server-identity"],
       catches=["server-identity-unchecked"], intents=[], mesh_needs=["impersonate"])
def test_impostor_server_refused(target, mesh, verdict):
    src, details = client(target, "bookinfo"), target.pod("bookinfo", "details")
    verdict.touch(src, details)
    with mesh.impersonate(details, target.pod("bookinfo", "ratings")):
        impostor = send(target, src, "http://details/details/0", N)
        control = send(target, src, "http://ratings/ratings/0", N)
    ok = [verdict.exact("honest server reached (positive control)", all_ok(control),
                        summary(control)),
          verdict.exact("impostor refused", bool(impostor)
                        and all(r.status != 200 for r in impostor), summary(impostor))]
    assert all(ok), verdict.lines


# ------------------------------------------------------------ client certificates


def _tls_probe(target, src, name: str, dst, cert: str, key: str, root: str):
    """From ``src`` (unmeshed), mTLS straight to ``dst``'s app port with these credentials."""
    return tls_probe(target, src, dst, put_tls_files(target, src, name, cert, key, root))


@check("mtls-client-cert-validated", "a client certificate from a foreign CA, or an expired "
       "one from the mesh CA, is refused; a valid mesh certificate is accepted",
       features=["cert-validation"], catches=["expired-cert-served", "peer-chain-unverified"],
       intents=["MTLSMode"], target_needs=["put-file", "probe-tls"], mesh_needs=["issue-certificate"])
def test_client_certificates_are_validated(target, mesh, verdict):
    strict_b(mesh)
    src, dst = client(target, OUTSIDE), echo(target, "team-b")
    verdict.touch(dst)
    issued = mesh.issue_certificate(client(target, "team-a"), ttl_s=3)
    t_issued = time.monotonic()
    valid = _tls_probe(target, src, "valid", dst, issued.cert, issued.key, issued.root)
    fcert, fkey = foreign_cert(issued.identity)
    foreign = _tls_probe(target, src, "foreign", dst, fcert, fkey, issued.root)
    time.sleep(max(0.0, t_issued + 4.5 - time.monotonic()))  # let it expire (plus skew)
    expired = _tls_probe(target, src, "expired", dst, issued.cert, issued.key, issued.root)
    ok = [verdict.exact("valid mesh certificate accepted (positive control)", all_ok(valid),
                        summary(valid)),
          verdict.exact("foreign-CA certificate refused", all(r.status == 0 for r in foreign),
                        summary(foreign)),
          verdict.exact("expired mesh certificate refused",
                        all(r.status == 0 for r in expired), summary(expired))]
    assert all(ok), verdict.lines
