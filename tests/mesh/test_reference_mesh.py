"""The reference mesh on real traffic: splits, mTLS modes, identity, the wire, the CA."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshproof.intent import MTLSMode, TrafficSplit
from meshproof.mesh.reference_local import CA_SOCKET
from tests.conftest import by_pod, statuses

pytestmark = [pytest.mark.lab, pytest.mark.mesh]

ECHO_B = {"url": "http://echo.team-b/echo", "timeout_s": 2}


def reviews_versions(lab, count: int) -> list[str]:
    ans = lab.probe("bookinfo/client-0", {"url": "http://reviews/reviews/0", "count": count})
    return [r["headers"].get("x-version", f"error:{r['error']}") for r in ans["results"]]


def test_productpage_works_through_the_mesh(lab, mesh):
    ans = lab.probe("bookinfo/client-0", {"url": "http://productpage/", "count": 20,
                                          "concurrency": 2})
    assert statuses(ans) == [200] * 20
    assert all(r["body"]["ok"] for r in ans["results"])


def test_app_sees_the_callers_spiffe_id(lab, mesh):
    r = lab.probe("team-a/client-0", ECHO_B)["results"][0]
    xfcc = r["body"]["headers"]["x-forwarded-client-cert"]
    assert "URI=spiffe://cluster.local/ns/team-a/sa/client" in xfcc
    assert "By=spiffe://cluster.local/ns/team-b/sa/echo" in xfcc
    # An unmeshed caller (PERMISSIVE) has no identity to show, and cannot forge one:
    forged = lab.probe("outside/client-0", {**ECHO_B, "headers": {
        "x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/team-a/sa/client"}})
    assert "x-forwarded-client-cert" not in forged["results"][0]["body"]["headers"]


def test_split_flip_takes_effect_when_programmed(lab, mesh):
    for _ in range(3):
        for version in ("v1", "v2"):
            other = "v2" if version == "v1" else "v1"
            split = TrafficSplit("bookinfo/reviews", ((f"reviews-{version}", 100),
                                                      (f"reviews-{other}", 0)))
            mesh.wait_programmed(mesh.apply(split))
            # The very first request after wait_programmed already follows the split.
            assert reviews_versions(lab, 1) == [version]
            assert set(reviews_versions(lab, 30)) == {version}


def test_strict_refuses_plaintext_while_meshed_client_succeeds(lab, mesh):
    mesh.wait_programmed(mesh.apply(MTLSMode("STRICT", namespace="team-b")))
    meshed = lab.probe("team-a/client-0", {**ECHO_B, "count": 5})
    outside = lab.probe("outside/client-0", {**ECHO_B, "count": 5})
    bypass = lab.probe("team-a/client-0", {**ECHO_B, "count": 5}, as_proxy_uid=True)
    assert statuses(meshed) == [200] * 5, meshed  # positive control in the same window
    for ans in (outside, bypass):
        assert statuses(ans) == [0] * 5, ans
        assert {r["error"] for r in ans["results"]} <= {"reset", "closed", "refused"}
    # PERMISSIVE lets the plaintext caller in again.
    mesh.wait_programmed(mesh.apply(MTLSMode("PERMISSIVE", namespace="team-b")))
    assert statuses(lab.probe("outside/client-0", ECHO_B)) == [200]


def test_workload_mode_beats_namespace_mode(lab, mesh):
    mesh.apply(MTLSMode("STRICT", namespace="team-b"))
    mesh.wait_programmed(mesh.apply(MTLSMode("PERMISSIVE", namespace="team-b",
                                             workload="echo")))
    assert statuses(lab.probe("outside/client-0", ECHO_B)) == [200]


def test_wire_is_encrypted_and_marker_seen_when_plaintext(lab, mesh):
    marker = "MESHPROOF-WIRE-MARKER-51c2"
    order = {**ECHO_B, "count": 10, "headers": {"x-marker": marker}}
    mesh.wait_programmed(mesh.apply(MTLSMode("STRICT", namespace="team-b")))
    cid = lab.capture_start("team-a/client-0", "team-b/echo-0")
    assert statuses(lab.probe("team-a/client-0", order)) == [200] * 10
    meshed = lab.capture_stop(cid, marker=marker)
    assert meshed["marker_hits"] == 0, meshed
    assert meshed["tls_records"] >= 20, meshed  # 10 requests and 10 responses at least
    # Positive control: the same marker, plaintext from outside (PERMISSIVE), is seen.
    mesh.wait_programmed(mesh.apply(MTLSMode("PERMISSIVE", namespace="team-b")))
    cid = lab.capture_start("outside/client-0", "team-b/echo-0")
    assert statuses(lab.probe("outside/client-0", order)) == [200] * 10
    plain = lab.capture_stop(cid, marker=marker)
    assert plain["marker_hits"] >= 10 and plain["tls_records"] == 0, plain


def _csr(spiffe: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshproof")]))
           .add_extension(x509.SubjectAlternativeName(
               [x509.UniformResourceIdentifier(spiffe)]), critical=True)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_ca_refuses_a_csr_for_a_foreign_identity(lab, mesh):
    from refmesh import unixhttp

    token = lab.bootstrap_token("team-a/client-0")
    own = "spiffe://cluster.local/ns/team-a/sa/client"
    status, body = unixhttp.request_json(CA_SOCKET, "POST", "/sign",
                                         {"csr": _csr(own), "token": token})
    assert status == 200 and body["spiffe_id"] == own
    status, body = unixhttp.request_json(
        CA_SOCKET, "POST", "/sign",
        {"csr": _csr("spiffe://cluster.local/ns/team-b/sa/echo"), "token": token})
    assert status == 403, body


def test_killed_sidecar_pod_leaves_endpoints_and_comes_back(lab, mesh):
    lab.kill_pod("bookinfo/reviews-v3-0")
    try:
        assert "v3" not in set(reviews_versions(lab, 30))
    finally:
        lab.revive_pod("bookinfo/reviews-v3-0")
    seen = set(reviews_versions(lab, 60))
    assert seen == {"v1", "v2", "v3"}, seen  # P(v3 unseen | uniform) = (2/3)^60 < 1e-10


def test_evidence_has_config_dump(lab, mesh):
    ev = mesh.evidence(["team-b/echo-0"])
    assert ev["team-b/echo-0"]["config_dump"]["configs"]
    assert "listeners" in ev["team-b/echo-0"]["generated"]
