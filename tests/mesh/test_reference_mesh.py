"""The reference mesh on real traffic: splits, mTLS modes, identity, the wire, the CA."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshproof.mesh.reference_local import CA_SOCKET
from meshproof.results import statuses

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
