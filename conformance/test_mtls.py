"""Conformance: mTLS modes, identities, certificate validation, and the wire.

Deny checks always send an allowed request in the same window (a dead
destination must not pass as "refused"), and the wire check sees the
plaintext marker when plaintext is allowed (an empty or misplaced capture
must not pass as "encrypted"). These checks are deterministic: every
request must behave, so their false-alarm rate is that of the network.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshproof.conformance.check import check
from meshproof.conformance.traffic import denial_kind, denied, send, summary
from meshproof.intent import MTLSMode

pytestmark = [pytest.mark.lab, pytest.mark.mesh]

ECHO_B = "http://echo.team-b/echo"
N = 10


def strict_b(mesh, mode: str = "STRICT") -> None:
    mesh.wait_programmed(mesh.apply(MTLSMode(mode, namespace="team-b")))


@check("mtls-strict-refuses-plaintext",
       "STRICT refuses plaintext from an unmeshed pod and from a capture-bypassing process, "
       "while a meshed client succeeds in the same window",
       features=["mtls-strict"], catches=["plaintext-accepted"], intents=["MTLSMode"])
def test_strict_refuses_plaintext(lab, mesh, verdict):
    strict_b(mesh)
    verdict.touch("team-b/echo-0", "team-a/client-0")
    meshed = send(lab, "team-a/client-0", ECHO_B, N, timeout_s=2)
    outside = send(lab, "outside/client-0", ECHO_B, N, timeout_s=2)
    bypass = send(lab, "team-a/client-0", ECHO_B, N, timeout_s=2, as_proxy_uid=True)
    ok = [verdict.exact("meshed client allowed (positive control)",
                        all(r["status"] == 200 for r in meshed), summary(meshed)),
          verdict.exact("plaintext from outside refused", all(denied(r) for r in outside),
                        {**summary(outside), "denied_as": denial_kind(outside)}),
          verdict.exact("plaintext bypassing capture refused", all(denied(r) for r in bypass),
                        {**summary(bypass), "denied_as": denial_kind(bypass)})]
    assert all(ok), verdict.lines


@check("mtls-permissive-accepts-both", "PERMISSIVE accepts plaintext and mTLS callers",
       features=["mtls-permissive"], intents=["MTLSMode"])
def test_permissive_accepts_both(lab, mesh, verdict):
    strict_b(mesh, "PERMISSIVE")
    verdict.touch("team-b/echo-0")
    meshed = send(lab, "team-a/client-0", ECHO_B, N)
    plain = send(lab, "outside/client-0", ECHO_B, N)
    ok = [verdict.exact("mTLS caller accepted", all(r["status"] == 200 for r in meshed),
                        summary(meshed)),
          verdict.exact("plaintext caller accepted", all(r["status"] == 200 for r in plain),
                        summary(plain))]
    assert all(ok), verdict.lines


@check("mtls-workload-over-namespace", "a workload's PERMISSIVE beats its namespace's STRICT",
       features=["mtls-workload-override"], intents=["MTLSMode"])
def test_workload_mode_beats_namespace_mode(lab, mesh, verdict):
    mesh.apply(MTLSMode("STRICT", namespace="team-b"))
    mesh.wait_programmed(mesh.apply(MTLSMode("PERMISSIVE", namespace="team-b",
                                             workload="echo")))
    plain = send(lab, "outside/client-0", ECHO_B, N)
    assert verdict.exact("plaintext accepted by the PERMISSIVE workload",
                         all(r["status"] == 200 for r in plain), summary(plain)), verdict.lines


@check("mtls-caller-identity", "the server sees the caller's SPIFFE ID; an unmeshed caller "
       "cannot forge one", features=["xfcc-spiffe"], intents=[])
def test_app_sees_the_callers_spiffe_id(lab, mesh, verdict):
    r = send(lab, "team-a/client-0", ECHO_B, 1)[0]
    xfcc = r["body"]["headers"].get("x-forwarded-client-cert", "")
    forged = send(lab, "outside/client-0", ECHO_B, 1, headers={
        "x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/team-a/sa/client"})[0]
    ok = [verdict.exact("caller's SPIFFE ID seen",
                        "URI=spiffe://cluster.local/ns/team-a/sa/client" in xfcc,
                        {"xfcc": xfcc}),
          verdict.exact("forged header stripped",
                        "x-forwarded-client-cert" not in forged["body"]["headers"],
                        {"headers": forged["body"]["headers"]})]
    assert all(ok), verdict.lines


@check("mtls-wire-encrypted", "between meshed pods the wire carries TLS records and no "
       "plaintext; the same marker is seen when plaintext is allowed",
       features=["mtls-strict", "mtls-permissive"], intents=["MTLSMode"])
def test_wire_is_encrypted(lab, mesh, verdict):
    marker = "MESHPROOF-WIRE-MARKER-51c2"
    headers = {"x-marker": marker}
    strict_b(mesh)
    cid = lab.capture_start("team-a/client-0", "team-b/echo-0")
    sent = send(lab, "team-a/client-0", ECHO_B, N, headers=headers)
    meshed = lab.capture_stop(cid, marker=marker)
    strict_b(mesh, "PERMISSIVE")
    cid = lab.capture_start("outside/client-0", "team-b/echo-0")
    sent_plain = send(lab, "outside/client-0", ECHO_B, N, headers=headers)
    plain = lab.capture_stop(cid, marker=marker)
    ok = [verdict.exact("requests answered", all(r["status"] == 200
                                                 for r in sent + sent_plain),
                        {"meshed": summary(sent), "plain": summary(sent_plain)}),
          verdict.exact(f"meshed: >= {2 * N} TLS records, 0 marker bytes",
                        meshed["tls_records"] >= 2 * N and meshed["marker_hits"] == 0,
                        {"capture": meshed}),
          verdict.exact(f"plaintext control: marker seen >= {N} times",
                        plain["marker_hits"] >= N and plain["tls_records"] == 0,
                        {"capture": plain})]
    assert all(ok), verdict.lines


@check("mtls-impostor-server-refused", "a client refuses a server presenting a valid mesh "
       "certificate for another identity", features=["server-identity"],
       catches=["server-identity-unchecked"], intents=[])
def test_impostor_server_refused(lab, mesh, verdict):
    verdict.touch("bookinfo/client-0", "bookinfo/details-0")
    lab.swap_identity("bookinfo/details-0", "bookinfo/ratings-0")
    try:
        impostor = send(lab, "bookinfo/client-0", "http://details/details/0", N)
        control = send(lab, "bookinfo/client-0", "http://ratings/ratings/0", N)
    finally:
        lab.swap_identity("bookinfo/details-0", "bookinfo/details-0")
    ok = [verdict.exact("honest server reached (positive control)",
                        all(r["status"] == 200 for r in control), summary(control)),
          verdict.exact("impostor refused", all(r["status"] != 200 for r in impostor),
                        summary(impostor))]
    assert all(ok), verdict.lines


# ------------------------------------------------------------ client certificates

SPIFFE_A = "spiffe://cluster.local/ns/team-a/sa/client"


def _csr_and_key(spiffe: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshproof")]))
           .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe)]),
                          critical=True).sign(key, hashes.SHA256()))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode(), pem


def _mesh_cert(lab, ttl_s: int) -> tuple[str, str, str]:
    """(cert, key, root) for team-a/client's identity, issued by the mesh CA."""
    from refmesh import unixhttp

    from meshproof.mesh.reference_local import CA_SOCKET

    csr, key = _csr_and_key(SPIFFE_A)
    status, body = unixhttp.request_json(CA_SOCKET, "POST", "/sign", {
        "csr": csr, "token": lab.bootstrap_token("team-a/client-0"), "ttl_seconds": ttl_s})
    assert status == 200, body
    return body["cert"], key, body["root"]


def _foreign_cert() -> tuple[str, str]:
    """A cert with the same SPIFFE ID, from a CA the mesh does not trust."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "foreign")])
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                SPIFFE_A)]), critical=True).sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def _tls_probe(lab, name: str, cert: str, key: str, root: str) -> list[dict]:
    """From the unmeshed pod, mTLS straight to team-b's echo pod with these credentials."""
    src = "outside/client-0"
    paths = {k: lab.put_file(src, f"{name}-{k}.pem", v)
             for k, v in (("cert", cert), ("key", key), ("ca", root))}
    ip = next(p["ip"] for p in lab.pods() if p["key"] == "team-b/echo-0")
    return lab.probe(src, {"url": f"https://{ip}:9080/echo", "count": 3, "timeout_s": 3,
                           "tls": paths})["results"]


@check("mtls-client-cert-validated", "a client certificate from a foreign CA, or an expired "
       "one from the mesh CA, is refused; a valid mesh certificate is accepted",
       features=["cert-validation"], catches=["expired-cert-served"], intents=["MTLSMode"])
def test_client_certificates_are_validated(lab, mesh, verdict):
    strict_b(mesh)
    verdict.touch("team-b/echo-0")
    cert, key, root = _mesh_cert(lab, ttl_s=3)
    issued = time.monotonic()
    valid = _tls_probe(lab, "valid", cert, key, root)
    fcert, fkey = _foreign_cert()
    foreign = _tls_probe(lab, "foreign", fcert, fkey, root)
    time.sleep(max(0.0, issued + 4.5 - time.monotonic()))  # let it expire (plus skew)
    expired = _tls_probe(lab, "expired", cert, key, root)
    ok = [verdict.exact("valid mesh certificate accepted (positive control)",
                        all(r["status"] == 200 for r in valid), summary(valid)),
          verdict.exact("foreign-CA certificate refused", all(r["status"] == 0 for r in foreign),
                        summary(foreign)),
          verdict.exact("expired mesh certificate refused",
                        all(r["status"] == 0 for r in expired), summary(expired))]
    assert all(ok), verdict.lines
