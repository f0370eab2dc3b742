"""TLS transport sockets: upstream (client) and downstream (server) mTLS with SDS secrets.

The key and cert come from the pod's agent over SDS ("default"); the trust
root too ("ROOTCA"). Upstream pins the destination's SPIFFE IDs, so a
sidecar never talks to an impostor with a valid mesh cert for another
identity.
"""

from __future__ import annotations

from typing import Any

from refmesh.bootstrap import sds_config

CERT_SECRET = "default"
ROOT_SECRET = "ROOTCA"
_TLS_SOCKET = "envoy.transport_sockets.tls"
_UP = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_DOWN = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
_RAW = {"name": "envoy.transport_sockets.raw_buffer",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}

#: An identity no workload has: pins upstream TLS shut when a service has no pods.
NOBODY = "spiffe://invalid/no-workload"


def raw_buffer() -> dict[str, Any]:
    return dict(_RAW)


def _common(san_uris: list[str] | None, allow_expired: bool = False) -> dict[str, Any]:
    validation: dict[str, Any] = {}
    if allow_expired:
        # Only the expired-cert-served defect sets this: a peer's expired SVID is accepted.
        validation["allow_expired_certificate"] = True
    if san_uris is not None:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "URI", "matcher": {"exact": u}} for u in (san_uris or [NOBODY])]
    return {
        # Envoy's client side stops at TLS 1.2 unless told otherwise (FIELD-NOTES).
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                       "tls_maximum_protocol_version": "TLSv1_3"},
        "tls_certificate_sds_secret_configs": [{"name": CERT_SECRET, "sds_config": sds_config()}],
        "combined_validation_context": {
            "default_validation_context": validation,
            "validation_context_sds_secret_config": {"name": ROOT_SECRET, "sds_config": sds_config()},
        },
    }


def upstream_mtls(sni: str, san_uris: list[str] | None,
                  allow_expired: bool = False, alpn: list[str] | None = None) -> dict[str, Any]:
    """Client side: present our SVID, accept only a server whose URI SAN is in ``san_uris``.

    ``san_uris=None`` pins nothing (the server-identity-unchecked defect). ``alpn``:
    offered protocols (``["h2"]`` for an HTTP/2 cluster).
    """
    common = _common(san_uris, allow_expired)
    if alpn:
        common["alpn_protocols"] = list(alpn)
    return {"name": _TLS_SOCKET, "typed_config": {
        "@type": _UP, "sni": sni, "common_tls_context": common}}


def downstream_mtls(allow_expired: bool = False, alpn: bool = True,
                    accept_untrusted: bool = False) -> dict[str, Any]:
    """Server side: present our SVID, require a client cert chaining to the mesh root.

    Which identities may call is access control (policy issue), not mTLS.
    """
    # ALPN (unless ``alpn=False``, the alpn-h2-unoffered defect): h2 for callers that offer it (HTTP/2 and gRPC ports, a client speaking h2
    # straight to the sidecar); a caller offering none still gets a session.
    common = _common(None, allow_expired)
    if accept_untrusted:
        # Only the peer-chain-unverified defect: the chain is verified, the verdict ignored.
        common["combined_validation_context"]["default_validation_context"][
            "trust_chain_verification"] = "ACCEPT_UNTRUSTED"
    if alpn:
        common["alpn_protocols"] = ["h2", "http/1.1"]
    return {"name": _TLS_SOCKET, "typed_config": {
        "@type": _DOWN, "require_client_certificate": True, "common_tls_context": common}}
