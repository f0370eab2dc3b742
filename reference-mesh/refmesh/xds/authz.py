"""Destination-side access control: AccessMode + AccessRules -> the inbound RBAC filter.

SMI semantics at the destination's sidecar (as Istio/OSM enforce
AuthorizationPolicy): under access mode ``smi`` the inbound route (RDS)
gets an ALLOW-action RBAC config whose policies are the AccessRules naming
this pod's identity ("ns/sa") as destination; anything no policy allows gets
403. A source is matched by the SPIFFE ID of its verified client
certificate, so a plaintext caller (no principal) is denied.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from meshproof.intent import AccessMode, AccessRule, Policy
from meshproof.targets.model import Pod, spiffe_id
from refmesh.xds.matches import rbac_permission

RBAC_FILTER = "envoy.filters.http.rbac"
NETWORK_RBAC_FILTER = "envoy.filters.network.rbac"
_NETWORK_RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
_RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
_RBAC_PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"


def access_mode(modes: tuple[AccessMode, ...], namespace: str) -> str:
    """The destination namespace's mode over the mesh-wide one; default permissive."""
    by_ns = {m.namespace: m.mode for m in modes}
    return by_ns.get(namespace, by_ns.get("", "permissive"))


def _principal(identity: str, defects: frozenset[str] = frozenset()) -> dict[str, Any]:
    ns, sa = identity.split("/")
    if "source-namespace-wide" in defects:
        # A source matched by its namespace only: every service account there gets in.
        return {"authenticated": {"principal_name": {
            "prefix": spiffe_id(ns, sa).rsplit("/sa/", 1)[0] + "/sa/"}}}
    return {"authenticated": {"principal_name": {"exact": spiffe_id(ns, sa)}}}


def rbac_policy(rule: AccessRule, defects: frozenset[str] = frozenset()) -> dict[str, Any]:
    routes = rule.routes
    if "route-path-prefix" in defects:
        # A rule's path matched as a prefix, not the whole path: /echo allows /echo-admin.
        routes = tuple(dataclasses.replace(r, path_regex=r.path_regex + ".*")
                       if r.path_regex and not r.path_regex.endswith(".*") else r for r in routes)
    permissions = [rbac_permission(r) for r in routes]
    if "route-header-prefix" in defects:
        permissions = [_header_exact_as_prefix(p) for p in permissions]
    if "route-method-case" in defects:
        permissions = [_method_any_case(p) for p in permissions]
    return {"permissions": (permissions or [{"any": True}]),
            "principals": [_principal(s, defects) for s in rule.sources]}


def _header_exact_as_prefix(x: Any) -> Any:
    """Defect ``route-header-prefix``: every exact header value matched as a prefix."""
    if isinstance(x, dict):
        if set(x) == {"exact"} and isinstance(x["exact"], str):
            return {"prefix": x["exact"]}
        return {k: _header_exact_as_prefix(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_header_exact_as_prefix(v) for v in x]
    return x


def _method_any_case(x: Any) -> Any:
    """Defect ``route-method-case``: a rule's methods matched case-insensitively (a
    translation that folds case, as for header names): "get" passes a GET rule."""
    if isinstance(x, dict):
        if x.get("name") == ":method" and "safe_regex" in x.get("string_match", {}):
            rx = x["string_match"]["safe_regex"]
            return {**x, "string_match": {"safe_regex": {**rx, "regex": f"(?i)(?:{rx['regex']})"}}}
        return {k: _method_any_case(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_method_any_case(v) for v in x]
    return x


def rbac_base_filter() -> dict[str, Any]:
    """The RBAC filter every inbound HCM carries, with no rules (= enforces nothing).

    Why per route and not in the listener: a listener update leaves pooled
    connections on the old listener until they drain (minutes), so a
    caller's sidecar that already had a connection open would keep the old
    access rules; RDS updates apply to the next request on every connection.
    """
    return {"name": RBAC_FILTER, "typed_config": {"@type": _RBAC_TYPE}}


def rbac_per_route(policy: Policy, pod: Pod, defects: frozenset[str] = frozenset()
                   ) -> dict[str, Any] | None:
    """The inbound route's RBAC config for ``pod``, or None when its namespace is permissive."""
    if access_mode(policy.access_modes, pod.namespace) != "smi":
        return None
    me = f"{pod.namespace}/{pod.service_account}"
    policies = {r.name: rbac_policy(r, defects) for r in sorted(policy.access_rules, key=lambda r: r.name)
                if r.destination == me}
    if not policies and "deny-only-with-rules" in defects:
        return None  # deny by default only where some rule names the destination
    rules: dict[str, Any] = {"action": "ALLOW"}
    if policies:
        rules["policies"] = policies
    return {"@type": _RBAC_PER_ROUTE_TYPE, "rbac": {"rules": rules}}


def network_rbac(policy: Policy, pod: Pod, defects: frozenset[str] = frozenset()
                 ) -> dict[str, Any] | None:
    """Access rules at L4 for ``pod``'s TCP ports (Envoy's network RBAC filter), or None
    when its namespace is permissive.

    Only a rule with no route conditions allows a TCP connection: an HTTP path or
    method cannot be seen in opaque bytes, so a rule that names one allows nothing at
    L4 (Istio drops such a rule for TCP the same way; SMI says it with a TCPRoute).
    A source is its verified client certificate's SPIFFE ID, as at L7.
    """
    if "tcp-authz-open" in defects:
        return None  # the defect: TCP ports are left without access rules
    if access_mode(policy.access_modes, pod.namespace) != "smi":
        return None
    me = f"{pod.namespace}/{pod.service_account}"
    policies = {r.name: {"permissions": [{"any": True}],
                         "principals": [_principal(s) for s in r.sources]}
                for r in sorted(policy.access_rules, key=lambda r: r.name)
                if r.destination == me and not r.routes}
    rules: dict[str, Any] = {"action": "ALLOW"}
    if policies:
        rules["policies"] = policies
    return {"name": NETWORK_RBAC_FILTER, "typed_config": {
        "@type": _NETWORK_RBAC_TYPE, "stat_prefix": "inbound_tcp_", "rules": rules}}
