"""The agent-drops-cert-on-ca-outage defect's placeholder (no lab): Envoy can load it (a
key and an SVID for the pod's own identity) and no peer can verify it against the mesh
root; the mesh's root stays the validation context."""

from __future__ import annotations

import asyncio

import pytest
from cryptography import x509

from refmesh import pki
from refmesh.agent import ROOT_SECRET, Identity, SecretStore, Svid, unverifiable_svid


def test_placeholder_is_the_same_identity_and_does_not_verify() -> None:
    root_key, root = pki.new_root("cluster.local")
    ident = Identity("team-b", "echo")
    key = pki.new_key()
    real = pki.sign_svid(root_key, root, key.public_key(), ident.spiffe, 60)
    store = SecretStore()
    asyncio.run(store.update(Svid(pki.cert_pem(real), pki.key_pem(key), pki.cert_pem(root))))
    fake = unverifiable_svid(ident, store)
    cert = x509.load_pem_x509_certificate(fake.cert_pem)
    assert pki.uri_sans(cert) == [ident.spiffe]
    assert fake.root_pem == pki.cert_pem(root)
    with pytest.raises(Exception):
        cert.verify_directly_issued_by(root)  # signed by a throwaway root
    real.verify_directly_issued_by(root)  # the positive control
    assert pki.load_key(fake.key_pem).public_key().public_numbers() == \
        cert.public_key().public_numbers()
    assert store.secrets[ROOT_SECRET].validation_context.trusted_ca.inline_bytes
