"""The defect registry: named, realistic mesh failures used as negative controls.

A conformance check declares which defects it catches; the project's own
tests bring the reference mesh up with each defect and show those checks
fail. An ID that is registered but not yet implemented is refused loudly:
a negative control that silently does nothing would prove nothing.
"""

from __future__ import annotations

from meshproof.errors import ConfigError

#: ID -> what goes wrong (DESIGN.md, "Defects").
DEFECTS: dict[str, str] = {
    "plaintext-accepted": "STRICT mTLS still accepts plaintext on the inbound listener",
    "weights-ignored": "traffic split weights are ignored (equal weights)",
    "match-ignored": "route matches are ignored: every request takes the split (or the "
                     "first HTTPRoute rule)",
    "retries-dropped": "the retry policy is not programmed",
    "timeouts-dropped": "route timeouts are not programmed",
    "authz-open": "access rules are not enforced (RBAC allows all)",
    "server-identity-unchecked": "clients do not verify the server's SPIFFE ID",
    "expired-cert-served": "an expired certificate is served and accepted",
    "fail-open-without-sidecar": "traffic bypasses a missing sidecar",
    "config-lost-on-cp-outage": "sidecars drop their config when the control plane goes away",
    "slow-proxy": "the sidecar adds latency to every request",
    "workload-strict-ignored": "a workload's STRICT mode does not beat its namespace's "
                               "PERMISSIVE",
    "deny-only-with-rules": "deny by default holds only for destinations some access rule "
                            "names",
    "route-path-prefix": "an access rule's path is matched as a prefix, not the whole path",
    "query-match-ignored": "HTTPRoute query parameter matches are dropped (the rule matches any query)",
    "header-modifier-dropped": "a rule's RequestHeaderModifier is not programmed",
    "response-header-modifier-dropped": "a rule's ResponseHeaderModifier is not programmed",
    "backend-filter-dropped": "a backendRef's header modifier filters are not programmed",
    "redirect-status-wrong": "every RequestRedirect answers 302, whatever statusCode says",
    "redirect-scheme-dropped": "a RequestRedirect's scheme is not programmed",
    "redirect-host-dropped": "a RequestRedirect's hostname is not programmed",
    "redirect-port-dropped": "a RequestRedirect's port is not programmed",
    "redirect-path-dropped": "a RequestRedirect's path (full or prefix) is not programmed",
    "rewrite-dropped": "a URLRewrite filter is not programmed",
    "precedence-rule-order": "HTTPRoute matches are tried in the order written, not by Gateway API's precedence",
    "precedence-reversed": "HTTPRoute matches are tried in the reverse of the order written "
                           "(a control plane that prepends each rule)",
    "path-prefix-not-segment": "an HTTPRoute PathPrefix matches any string prefix (/v2 matches /v2example)",
    "consumer-route-leaks": "a consumer route (other namespace than its Service) applies to every caller",
    "producer-route-dropped": "a route in its Service's own namespace is not applied",
    "route-by-host": "the Host header, not the Service IP a request is sent to, picks its "
                     "routes",
    "port-ignored": "an HTTPRoute parentRef port is ignored (the route applies to every port)",
    "plaintext-other-port": "STRICT mTLS refuses plaintext on the pod's primary port only; "
                            "its other ports still accept it",
    "tcp-authz-open": "access rules are not enforced on TCP ports (L4): anyone connects",
    "h2-downgraded": "ports declared http2/grpc are carried as HTTP/1.1 upstream",
    "xfcc-h2-unset": "the caller's identity is not forwarded to the app on HTTP/2 and gRPC "
                     "ports",
    "tcp-upstream-plaintext": "sidecars send opaque TCP to meshed peers in plaintext",
    "alpn-h2-unoffered": "inbound TLS offers no ALPN h2: HTTP/2 clients over TLS are refused",
    "namespace-mode-ignored": "under a mesh-wide mTLS mode a namespace's own mode is ignored",
    "source-namespace-wide": "an access rule's source admits every service account of its "
                             "namespace",
    "route-header-prefix": "an access rule's exact header value is matched as a prefix",
    "route-method-case": "an access rule's methods are matched case-insensitively (\"get\" "
                         "passes a GET rule; HTTP methods are case-sensitive, RFC 9110 9.1)",
    "split-header-prefix": "a TrafficSplit match's exact header value is matched as a prefix "
                           "(end-user: jasonx takes a split for jason)",
    "timeout-per-try": "with a per-try timeout set, a route timeout is applied to each try "
                       "instead of the whole request: retries outlive it",
    "mesh-mode-ignored": "a mesh-wide mTLS mode is not applied: namespaces without their own "
                         "mode keep the default",
    "peer-chain-unverified": "the server side verifies a client certificate's chain but "
                             "accepts it when verification fails (a foreign CA's, an expired "
                             "one)",
    "abort-percent-ignored": "an abort fault's percentage is ignored: every request is "
                             "aborted",
    "xfcc-forwarded": "the server's sidecar passes a caller's x-forwarded-client-cert "
                      "through instead of setting it from the verified certificate",
    "rotation-stopped": "the identity agent never renews a certificate on its own: it is "
                        "served until it expires",
    "ca-signs-any": "the CA signs whatever identity a CSR names for any known workload "
                    "credential",
    "acked-on-send": "the control plane reports a version ACKed (programmed) when it sends "
                     "it, before the sidecar has applied it",
    "outlier-not-programmed": "outlier detection is not programmed: a failing endpoint "
                              "is never ejected",
    "dead-endpoint-kept": "an endpoint that is no longer ready stays in the load-balancing "
                          "set",
    "endpoints-first-port-only": "a multi-port Service's endpoints are programmed for its "
                                 "first port only: its other ports have no endpoint (503)",
    "grpc-precedence-as-http": "GRPCRoute matches are ordered by HTTPRoute's path rules "
                               "(a method-only match as a regex before a service-only "
                               "prefix), not by characters of service, then method",
    "agent-drops-cert-on-ca-outage": "the identity agent drops its certificate when the CA "
                                     "is unreachable, instead of serving it until expiry",
    "fault-delay-dropped": "a Fault intent's delay is not programmed (requests are never "
                           "delayed; an abort still is)",
    "fault-delay-percent-wrong": "a delay fault's percentage is programmed 10 points high "
                                 "(50% delays 60%: the delay check's margin)",
}

#: Defects the reference mesh's control plane injects in its xDS builders (each at one
#: place in refmesh.xds, passed in as the state option ``{"defects": [ID]}`` by
#: reference_local.install, or switched on a running lab by its ``set_defect``); each
#: one's xDS diff is confined to what it names (tests/refmesh/test_defect_confinement.py).
#: One list: refmesh.xds.defects reads it from here.
XDS_DEFECTS: frozenset[str] = frozenset({
    "plaintext-accepted", "weights-ignored", "match-ignored", "retries-dropped",
    "timeouts-dropped", "authz-open", "server-identity-unchecked", "expired-cert-served",
    "slow-proxy", "workload-strict-ignored", "deny-only-with-rules", "route-path-prefix",
    "query-match-ignored",
    "header-modifier-dropped",
    "response-header-modifier-dropped",
    "backend-filter-dropped",
    "redirect-status-wrong",
    "redirect-scheme-dropped",
    "redirect-host-dropped",
    "redirect-port-dropped",
    "redirect-path-dropped",
    "rewrite-dropped",
    "precedence-rule-order",
    "path-prefix-not-segment",
    "route-by-host",
    "precedence-reversed",
    "consumer-route-leaks",
    "producer-route-dropped",
    "port-ignored",
    "plaintext-other-port", "tcp-authz-open", "h2-downgraded", "xfcc-h2-unset",
    "tcp-upstream-plaintext", "alpn-h2-unoffered",
    "namespace-mode-ignored", "source-namespace-wide", "xfcc-forwarded", "route-header-prefix",
    "route-method-case", "split-header-prefix", "timeout-per-try",
    "mesh-mode-ignored", "peer-chain-unverified",
    "abort-percent-ignored",
    "outlier-not-programmed", "dead-endpoint-kept",
    "fault-delay-dropped", "fault-delay-percent-wrong",
    "endpoints-first-port-only", "grpc-precedence-as-http",
})

#: Defects the reference mesh can inject in this version: the xDS ones and those of its
#: other parts (each one flag of the part it names).
IMPLEMENTED: frozenset[str] = XDS_DEFECTS | frozenset({
    # Lab-level (meshproof.mesh.reference_local.LAB_DEFECTS), caught by chaos experiments.
    "fail-open-without-sidecar", "config-lost-on-cp-outage",
    # The identity agent's (meshproof.mesh.reference_local.AGENT_DEFECTS: one agent flag).
    "rotation-stopped", "agent-drops-cert-on-ca-outage",
    # The CA's (meshproof.mesh.reference_local.CA_DEFECTS: one CA flag).
    "ca-signs-any",
    # The control plane's ACK bookkeeping (reference_local.CP_DEFECTS: one flag).
    "acked-on-send",
})


def require(defect_id: str) -> None:
    if defect_id not in DEFECTS:
        raise ConfigError(f"unknown defect {defect_id!r}",
                          f"defects: {', '.join(sorted(DEFECTS))}")
    if defect_id not in IMPLEMENTED:
        raise ConfigError(f"defect {defect_id!r} is registered but not implemented yet",
                          "implemented: " + (", ".join(sorted(IMPLEMENTED)) or "(none yet)"))
