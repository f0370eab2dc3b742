"""Conformance: workload identity over time and at its source.

Rotation, seen as any mesh's peer sees it: a fresh TLS handshake verifies the
server's certificate (chain and validity period) against the mesh's root, so a
run of successful handshakes spanning more than a certificate's lifetime proves
the mesh replaced it before it expired. The handshakes are the check's own
(the target's ``probe-tls``): traffic through a client sidecar cannot show a
rotation, because the sidecar pools its upstream TLS connections and reuses
them for as long as it likes (Envoy kept one across three rotations of the
caller's certificate here: the server saw the same XFCC ``Hash`` throughout),
which is correct and is checked separately (pooled and fresh requests keep
working across rotations). Every meshed pod serves its one workload
certificate in both directions, so the caller's pod is probed as a server too.
"""

from __future__ import annotations

import re
import time

import pytest

from meshproof.conformance.check import check
from meshproof.conformance.pods import OUTSIDE, client, echo
from meshproof.conformance.tls import put_tls_files, tls_probe
from meshproof.intent import AccessMode, AccessRule, MTLSMode
from meshproof.probe import all_denied, all_ok, denial_evidence, send, summary

pytestmark = [pytest.mark.mesh]

ECHO_B = "http://echo.team-b/echo"
#: Certificate lifetime while the check runs. The agent renews at half life, so a
#: correct mesh has ~TTL/2 s (>= 1.5 s after X.509's whole seconds) to get a new one
#: signed and into its proxy: far more than a signing takes on a loaded 2-core box.
TTL = 4
#: Handshakes must span more than 2 TTL: each certificate lives at most TTL, so at
#: least three certificates (two rotations) per pod were served in that span.
SPAN = 2 * TTL + 1
#: One round (handshakes to both pods, fresh and pooled meshed requests) per second.
PERIOD = 1.0


def _xfcc_hash(result) -> str:
    xfcc = str(dict(result.json.get("headers") or {}).get("x-forwarded-client-cert", ""))
    m = re.search(r"Hash=([0-9a-f]+)", xfcc)
    return m.group(1)[:16] if m else ""


@check("mtls-cert-rotation",
       "with a short certificate lifetime, every fresh handshake to a meshed pod (caller "
       "and server) verifies a valid mesh certificate over more than "
       "two lifetimes (so the mesh rotated before expiry), and meshed requests on fresh "
       "and pooled connections keep answering across the rotations",
       features=["cert-rotation"], catches=["rotation-stopped"], intents=["MTLSMode"],
       target_needs=["put-file", "probe-tls"],
       mesh_needs=["short-cert-ttl", "issue-certificate"])
def test_certificates_rotate_before_expiry(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply(MTLSMode("STRICT", namespace="team-b")))
    out, a, b = client(target, OUTSIDE), client(target, "team-a"), echo(target, "team-b")
    verdict.touch(a, b)
    # The check's own credentials, long-lived (an explicit TTL is not the mesh's setting).
    issued = mesh.issue_certificate(client(target, "team-c"), ttl_s=300)
    tls = put_tls_files(target, out, "rotation", issued.cert, issued.key, issued.root)
    warm = send(target, a, ECHO_B, 3, fresh=False, concurrency=1)  # a pre-rotation pool
    handshakes: dict[str, list] = {b.key: [], a.key: []}
    meshed_fresh: list = []
    meshed_pooled: list = []
    times: list[tuple[float, float]] = []
    with mesh.short_cert_ttl(TTL):
        t0 = time.monotonic()
        while True:
            start = time.monotonic()
            for dst in (b, a):
                handshakes[dst.key] += tls_probe(target, out, dst, tls, count=1)
            meshed_fresh += send(target, a, ECHO_B, 2)
            meshed_pooled += send(target, a, ECHO_B, 3, fresh=False, concurrency=1)
            times.append((start, time.monotonic()))
            # Bounded: the span is reached after about SPAN / PERIOD rounds; a failed
            # handshake has already decided the verdict.
            failed = any(r.status != 200 for rs in handshakes.values() for r in rs)
            if failed or times[-1][0] - times[0][1] > SPAN or time.monotonic() - t0 > 6 * SPAN:
                break
            time.sleep(max(0.0, start + PERIOD - time.monotonic()))
    span = times[-1][0] - times[0][1]  # a lower bound on the first-to-last handshake span
    bad = {k: [f"{r.outcome} {r.detail[:160]}" for r in rs if r.status != 200]
           for k, rs in handshakes.items()}
    hashes = {_xfcc_hash(r) for r in meshed_fresh + meshed_pooled if r.status == 200}
    ok = [verdict.exact("every fresh handshake verified a valid certificate (mesh root, "
                        "validity period)",
                        all(not v for v in bad.values()) and all(handshakes.values()),
                        {"handshakes": {k: len(v) for k, v in handshakes.items()},
                         "failed": {k: v[:5] for k, v in bad.items() if v}}),
          verdict.exact(f"handshakes spanned more than 2 lifetimes ({span:.1f} s > {SPAN} s,"
                        f" so >= 3 certificates per pod)", span > SPAN,
                        {"span_s": round(span, 2), "rounds": len(times), "ttl_s": TTL}),
          verdict.exact("meshed requests kept answering on fresh connections",
                        all_ok(meshed_fresh) and all_ok(warm), summary(meshed_fresh)),
          verdict.exact("meshed requests kept answering on pooled connections",
                        all_ok(meshed_pooled),
                        summary(meshed_pooled) | {"caller_cert_hashes_seen": len(hashes)})]
    assert all(ok), verdict.lines


@check("ca-refuses-foreign-identity",
       "a workload asking the mesh's issuing path with its own credentials gets its own "
       "identity, and is refused another workload's (same and other namespace), its own "
       "plus another's, a case variant, a longer name with its own as prefix, and its own "
       "path in another trust domain",
       features=["identity-issuance"], catches=["ca-signs-any"], intents=[],
       mesh_needs=["request-certificate"])
def test_ca_refuses_foreign_identities(target, mesh, verdict):
    a = client(target, "team-a")
    own = a.identity
    foreign = {
        "same namespace's other workload": (echo(target, "team-a").identity,),
        "other namespace's workload": (echo(target, "team-b").identity,),
        "own plus another's": (own, echo(target, "team-b").identity),
        "case variant": (own.replace("/sa/", "/SA/").upper().replace("SPIFFE://",
                                                                      "spiffe://"),),
        "own name as a prefix": (own + "-admin",),
        "another trust domain": (own.replace("spiffe://cluster.local/",
                                             "spiffe://elsewhere.example/"),),
    }
    answer = mesh.request_certificate(a, (own,))
    refused = {why: mesh.request_certificate(a, ids) for why, ids in foreign.items()}
    ok = [verdict.exact("own identity granted, naming exactly it (positive control)",
                        answer.granted and answer.detail == own,
                        {"asked": own, "answer": answer.detail}),
          verdict.exact("every foreign identity refused",
                        not any(r.granted for r in refused.values()),
                        {why: {"asked": list(r.asked), "granted": r.granted,
                               "answer": r.detail[:160]} for why, r in refused.items()})]
    assert all(ok), verdict.lines


def _uris(result) -> list[str]:
    xfcc = str(dict(result.json.get("headers") or {}).get("x-forwarded-client-cert", ""))
    return re.findall(r"URI=([^;,\s]+)", xfcc)


@check("mtls-forged-identity-meshed-caller",
       "a meshed caller that puts another workload's identity in x-forwarded-client-cert: "
       "the server's app sees only the caller's own identity, and an access rule for the "
       "forged identity does not let it in",
       features=["xfcc-spiffe", "access-control"], catches=["xfcc-forwarded"],
       intents=["AccessMode", "AccessRule"])
def test_meshed_caller_cannot_forge_identity(target, mesh, verdict):
    a, c = client(target, "team-a"), client(target, "team-c")
    verdict.touch(echo(target, "team-b"))
    forged = {"x-forwarded-client-cert": f"URI={a.identity}"}
    seen = send(target, c, ECHO_B, 5, headers=forged)
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/allow-team-a", "team-b/echo", ("team-a/client",))]))
    denied = send(target, c, ECHO_B, 5, headers=forged)
    allowed = send(target, a, ECHO_B, 5)
    ok = [verdict.exact("the app sees exactly the caller's own identity",
                        all_ok(seen) and all(_uris(r) == [c.identity] for r in seen),
                        {"uris_seen": [_uris(r) for r in seen[:3]], "caller": c.identity}),
          verdict.exact("team-a allowed (positive control)", all_ok(allowed), summary(allowed)),
          verdict.exact("team-c forging team-a's identity denied", all_denied(denied),
                        denial_evidence(denied))]
    assert all(ok), verdict.lines
