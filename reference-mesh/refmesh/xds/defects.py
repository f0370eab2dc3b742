"""Defects the xDS builders can inject (negative controls; see meshproof.mesh.defects).

Each one is a realistic translation bug, injected at exactly one place in
the builders so it changes only its own behaviour (tests/refmesh compare
the generated xDS with and without each and check the diff's paths):

- ``plaintext-accepted``: STRICT inbound still gets the plaintext chain.
- ``weights-ignored``: every deployed split backend gets weight 1
  (0-weight backends included: "weights are ignored").
- ``match-ignored``: a split's match is dropped, every request takes the split.
- ``retries-dropped``: a Retry intent is not programmed (the mesh's default
  connection-level retry stays).
- ``timeouts-dropped``: a Timeout intent is not programmed.
- ``authz-open``: the inbound RBAC filter is not installed under access mode smi.
- ``server-identity-unchecked``: upstream TLS does not pin the server's SAN.
- ``expired-cert-served``: every validation context accepts expired peer
  certificates (``allow_expired_certificate``).
- ``workload-strict-ignored``: a workload-scoped STRICT does not beat its namespace's
  PERMISSIVE (precedence wrong in the direction the first checks did not test).
- ``deny-only-with-rules``: under access mode smi, a destination no AccessRule names
  gets no RBAC at all (deny by default only where some rule exists).
- ``route-path-prefix``: an access rule's path is matched as a prefix of the path.
- HTTPRoute translation (:mod:`refmesh.xds.httproutes`), one field each:
  ``query-match-ignored``, ``header-modifier-dropped``, ``response-header-modifier-dropped``, ``backend-filter-dropped``, ``redirect-status-wrong``, ``redirect-scheme-dropped``, ``redirect-host-dropped``, ``redirect-port-dropped``, ``redirect-path-dropped``, ``rewrite-dropped``, ``precedence-rule-order``, ``path-prefix-not-segment``, ``route-by-host`` (refmesh.xds.resources), ``precedence-reversed``, ``consumer-route-leaks``, ``producer-route-dropped``, ``port-ignored`` (what each does: meshproof.mesh.defects.DEFECTS).
- ``plaintext-other-port``: STRICT drops the plaintext chain of the pod's first
  (primary) port only; every other app port still takes plaintext.
- ``tcp-authz-open``: access rules are not enforced on TCP ports (no network RBAC
  filter): any caller reaches a ``tcp`` port under access mode smi.
- ``h2-downgraded``: ``http2``/``grpc`` clusters lose their HTTP/2 protocol options
  (the hop to the peer sidecar and to the app falls back to HTTP/1.1).
- ``xfcc-h2-unset``: the inbound HCM of ``http2``/``grpc`` ports does not set
  ``x-forwarded-client-cert`` (the app on those ports cannot see its caller).
- ``tcp-upstream-plaintext``: ``tcp`` clusters send plaintext to meshed endpoints
  (auto mTLS forgotten for opaque TCP).
- ``alpn-h2-unoffered``: inbound TLS offers no ALPN, so a client speaking HTTP/2
  over TLS straight to the sidecar cannot negotiate h2 (sidecar-to-sidecar traffic
  still works: the server sniffs the HTTP/2 preface).
- ``namespace-mode-ignored``: under a mesh-wide mTLS mode, a namespace's own mode is
  ignored (namespace-over-mesh precedence wrong, both directions).
- ``source-namespace-wide``: an access rule's source matches every service account of
  the source's namespace (a principal prefix instead of the exact SPIFFE ID).
- ``route-header-prefix``: an access rule's exact header value is matched as a prefix.
- ``route-method-case``: an access rule's methods are matched case-insensitively.
- ``timeout-per-try``: where a Retry sets a per-try timeout, a Timeout intent becomes
  the per-try timeout and the route's own timeout is disabled (retries outlive it).
- ``mesh-mode-ignored``: a mesh-wide mTLS mode is dropped (only namespace and workload
  modes apply).
- ``peer-chain-unverified``: inbound TLS validation ends in ``ACCEPT_UNTRUSTED``.
- ``abort-percent-ignored``: a Fault's abort percentage is programmed as 100 %.
- ``split-header-prefix``: a TrafficSplit match's exact header values are matched as
  prefixes (the split arm's route match only).
- ``xfcc-forwarded``: the inbound side passes a caller's x-forwarded-client-cert through
  as sent (ALWAYS_FORWARD_ONLY) instead of setting it from the verified certificate.
- ``outlier-not-programmed``: an OutlierDetection intent is not programmed (the
  service's cluster gets no ``outlier_detection``).
- ``dead-endpoint-kept``: a service's EDS keeps its pods that are not ready (a
  killed pod stays in the load-balancing set).
- ``fault-delay-dropped``: a Fault intent's delay is left out of the route's
  HTTPFault (its abort stays).
- ``fault-delay-percent-wrong``: a Fault intent's delay percentage is programmed 10
  points high (capped at 100), the margin of the ``fault-delay-percent`` check.
- ``endpoints-first-port-only``: a multi-port Service's EDS is filled for its first
  port only; its other ports' clusters have no endpoint (Gateway API's MeshBasic,
  judged on every port of every version Service, catches it).
- ``grpc-precedence-as-http``: GRPCRoute matches are ordered by HTTPRoute's path
  precedence (:mod:`refmesh.xds.httproutes`), so a method-only match (a regex path)
  beats a service-only one (a prefix) and a regex service beats a longer exact one.
- ``slow-proxy``: every outbound route gets a 100 % fixed delay of
  :data:`SLOW_PROXY_DELAY_MS` ms (a route whose Fault intent already sets a
  delay keeps that delay).

Lab-level defects (``fail-open-without-sidecar``, ``config-lost-on-cp-outage``)
are not xDS and are not handled here.
"""

from __future__ import annotations

#: Defects this package injects (one list, kept with the registry); others passed in
#: options are ignored here.
from meshproof.mesh.defects import XDS_DEFECTS

#: The slow-proxy defect's added latency per request and per caller sidecar:
#: 3 ms is ~10x the two-sidecar p50 overhead measured here (~0.35 ms), so a
#: latency check must catch it, yet small enough to look like a plausible bug.
SLOW_PROXY_DELAY_MS = 3
