"""Certificate helpers shared by the CA and the agent (pure functions, no I/O beyond files).

Keys are ECDSA P-256, identities are SPIFFE URIs carried as the only,
critical, URI SAN (subject left empty, as SPIFFE X.509-SVIDs do).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    k = serialization.load_pem_private_key(pem, None)
    assert isinstance(k, ec.EllipticCurvePrivateKey)
    return k


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_csr(key: ec.EllipticCurvePrivateKey, spiffe: str) -> bytes:
    """A CSR whose only identity is the URI SAN ``spiffe``."""
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe)]),
                          critical=True)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def uri_sans(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.UniformResourceIdentifier)


def new_root(trust_domain: str, days: int = 3650) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshproof"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"meshproof root CA {trust_domain}")])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def sign_svid(root_key: ec.EllipticCurvePrivateKey, root: x509.Certificate,
              public_key: ec.EllipticCurvePublicKey, spiffe: str, ttl_seconds: int,
              not_before: dt.datetime | None = None, *, more: tuple[str, ...] = ()
              ) -> x509.Certificate:
    """An X.509-SVID for ``spiffe`` valid from ``not_before`` until now + ``ttl_seconds``.

    ``not_before`` defaults to a minute ago, so small clock skew between
    pods does not reject a fresh cert; the TTL still counts from now.
    """
    now = _now()
    start = not_before or (now - dt.timedelta(seconds=60))
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([])).issuer_name(root.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now + dt.timedelta(seconds=ttl_seconds))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=True, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(u) for u in (spiffe, *more)]), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root.public_key()),
                           critical=False)
            .sign(root_key, hashes.SHA256()))


def write_private(path: Path, data: bytes, uid: int | None = None) -> None:
    """Write ``data`` as a 0600 file (owned by ``uid`` if given) atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    if uid is not None:
        os.chown(tmp, uid, uid)
    os.replace(tmp, path)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
