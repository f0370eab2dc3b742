"""Certificates a check makes itself: CSRs for a mesh CA, and forged certificates.

A check that proves a mesh refuses a foreign CA's certificate, or signs only the
identity a pod may claim, needs keys and certificates that did not come from
the mesh: ECDSA P-256 with a critical URI SAN, the SPIFFE SVID shape.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def csr_and_key(spiffe_id: str, *more: str) -> tuple[str, str]:
    """A CSR for ``spiffe_id`` (and any ``more`` URI SANs) and its private key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.UniformResourceIdentifier(u) for u in (spiffe_id, *more)]
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshproof")]))
           .add_extension(x509.SubjectAlternativeName(sans), critical=True)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key)


def foreign_cert(spiffe_id: str, hours: int = 1) -> tuple[str, str]:
    """(cert, key) claiming ``spiffe_id``, self-signed by a CA no mesh trusts."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "foreign")])
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=hours))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                spiffe_id)]), critical=True).sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key)
