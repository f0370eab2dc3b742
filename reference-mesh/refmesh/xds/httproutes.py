"""HTTPRoute intents -> the caller's route entries for one service (RDS).

Which routes a caller gets for a service: the consumer routes of the
caller's own namespace if there are any (they replace the Service's own,
GEP-1294), else the producer routes (same namespace as the Service); a
route with a parentRef port only on that port. Every (route, rule, match)
becomes one Envoy route entry; the entries are ordered by Gateway API's
precedence (:func:`meshproof.routing.precedence_key`), ties by route name,
rule and match order, because Envoy takes the first entry that matches.
A GRPCRoute's entries follow GRPCRoute's precedence instead (characters of
service, then method, then headers: :func:`meshproof.routing.grpc_precedence_key`),
ahead of any HTTPRoute's (the spec forbids merging the two).
No entry matching -> Envoy's 404, as Gateway API wants for a Service with
routes attached.

Each entry's action is a redirect (answered by the caller's sidecar), or a
route to the rule's weighted backends (each with its own header filters),
with the rule's header modifiers, URL rewrite and timeout. Defects (see
:mod:`refmesh.xds.defects`) change exactly one of these translations.
"""

from __future__ import annotations

from typing import Any

from meshproof.intent import HTTPMatch, HTTPRoute, RouteRule
from meshproof.policy.regex import escape
from meshproof.routing import (HeaderModifier, Redirect, RouteBackend, grpc_precedence_key,
                               precedence_key)
from meshproof.targets.model import Registry, Service, ServicePort
from refmesh.xds import names
from refmesh.xds.matches import safe_regex
from refmesh.xds.ports import backend_port

#: Envoy's RedirectAction.response_code names.
_REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER",
                   307: "TEMPORARY_REDIRECT", 308: "PERMANENT_REDIRECT"}

#: (name, match, action: the entry's "route"/"redirect"/"direct_response" part, extra fields)
Arm = tuple[str, HTTPMatch | None, dict[str, Any], dict[str, Any]]


def routes_for(routes: list[HTTPRoute], svc: Service, caller_namespace: str,
               defects: frozenset[str], port: int = 0) -> list[HTTPRoute]:
    """The HTTPRoutes that decide where requests from a caller in ``caller_namespace``
    to ``svc`` on ``port`` (0: the primary port) go."""
    port = port or svc.spec.port
    mine = [r for r in routes if r.service == svc.key
            and ("port-ignored" in defects or r.port in (0, port))]
    if "producer-route-dropped" in defects:
        mine = [r for r in mine if r.consumer]
    consumer = [r for r in mine if r.consumer == caller_namespace]
    if "consumer-route-leaks" in defects:
        consumer = [r for r in mine if r.consumer]
    return sorted(consumer or [r for r in mine if not r.consumer], key=lambda r: r.name)


def route_arms(reg: Registry, svc: Service, routes: list[HTTPRoute],
               defects: frozenset[str], port: ServicePort | None = None) -> list[Arm]:
    """One arm per (route, rule, match), in Gateway API's precedence order, for the
    service's ``port`` (default: the primary one)."""
    port = port or svc.spec.ports[0]
    keyed: list[tuple[Any, Arm]] = []
    for ri, route in enumerate(routes):
        for i, rule in enumerate(route.rules):
            for j, m in enumerate(rule.matches or (HTTPMatch(),)):
                m = _defected_match(m, defects)
                order = (ri, i, j)
                if "precedence-rule-order" in defects:
                    key: Any = order
                elif "precedence-reversed" in defects:
                    key = tuple(-x for x in order)
                elif route.grpc and "grpc-precedence-as-http" not in defects:
                    # GRPCRoute's own precedence, and never merged with HTTPRoutes' (the
                    # spec): the GRPCRoutes' arms first.
                    key = (0, grpc_precedence_key(m), order)
                else:
                    key = (1, precedence_key(m), order)
                name = f"{route.name}/{rule.name or i}/{j}"
                keyed.append((key, (name, m, *_action(reg, svc, rule, m, defects, port))))
    return [arm for _, arm in sorted(keyed, key=lambda x: x[0])]


def _defected_match(m: HTTPMatch, defects: frozenset[str]) -> HTTPMatch:
    if "match-ignored" in defects:
        return HTTPMatch()
    if "query-match-ignored" in defects and m.query:
        m = HTTPMatch(m.path_regex, m.methods, m.headers, m.path_exact, m.path_prefix)
    return m


def header_ops(mod: HeaderModifier | None, side: str) -> dict[str, Any]:
    """Envoy's ``{side}_headers_to_add`` / ``_to_remove`` for a Gateway API header modifier."""
    if not mod:
        return {}
    add = [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
           for k, v in mod.set]
    add += [{"header": {"key": k, "value": v}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
            for k, v in mod.add]
    out: dict[str, Any] = {}
    if add:
        out[f"{side}_headers_to_add"] = add
    if mod.remove:
        out[f"{side}_headers_to_remove"] = list(mod.remove)
    return out


def _prefix_rewrite(m: HTTPMatch, replacement: str) -> dict[str, Any]:
    """ReplacePrefixMatch as a regex rewrite of the prefix this match matched.

    A regex, not Envoy's ``prefix_rewrite``: replacing ``/prefix`` with ``/``
    must give ``/one`` for ``/prefix/one`` (not ``//one``) and ``/`` for
    ``/prefix``, as Gateway API's examples say.
    """
    prefix = escape(m.path_prefix)
    rep = replacement.rstrip("/")
    if not rep:
        return {"regex_rewrite": {"pattern": safe_regex(f"^{prefix}/*(.*)$"),
                                  "substitution": "/\\1"}}
    return {"regex_rewrite": {"pattern": safe_regex(f"^{prefix}(/.*)?$"),
                              "substitution": rep + "\\1"}}


def _full_rewrite(path: str) -> dict[str, Any]:
    """ReplaceFullPath: the whole path (the query string is kept by Envoy)."""
    return {"regex_rewrite": {"pattern": safe_regex("^/.*$"),
                              "substitution": path.replace("\\", "\\\\")}}


def _redirect(r: Redirect, m: HTTPMatch, defects: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.scheme and "redirect-scheme-dropped" not in defects:
        out["scheme_redirect"] = r.scheme
    if r.hostname and "redirect-host-dropped" not in defects:
        out["host_redirect"] = r.hostname
    if r.port and "redirect-port-dropped" not in defects:
        out["port_redirect"] = r.port
    if "redirect-path-dropped" not in defects:
        if r.path_full:
            out["path_redirect"] = r.path_full
        elif r.path_prefix:
            out.update(_prefix_rewrite(m, r.path_prefix))
    status = 302 if "redirect-status-wrong" in defects else r.status
    out["response_code"] = _REDIRECT_CODES[status]
    return out


def _backend_cluster(reg: Registry, svc: Service, b: RouteBackend, port: ServicePort,
                     defects: frozenset[str]) -> dict[str, Any] | None:
    try:
        backend = reg.service(svc.namespace, b.service)
    except KeyError:
        return None  # not deployed (yet): never route into a void cluster
    # The backendRef's port, else the port matching the one called (as a split's).
    to = b.port if b.port and any(p.port == b.port for p in backend.spec.ports) else (
        None if b.port else backend_port(backend, port))
    if to is None:
        return None  # no such port: never route into a void cluster
    c: dict[str, Any] = {"name": names.outbound_cluster(backend, to),
                         "weight": 1 if "weights-ignored" in defects else b.weight}
    if "backend-filter-dropped" not in defects:
        c.update(header_ops(b.request_headers, "request"))
        c.update(header_ops(b.response_headers, "response"))
    return c


def _action(reg: Registry, svc: Service, rule: RouteRule, m: HTTPMatch,
            defects: frozenset[str], port: ServicePort
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    extra: dict[str, Any] = {}
    if "header-modifier-dropped" not in defects:
        extra.update(header_ops(rule.request_headers, "request"))
    if "response-header-modifier-dropped" not in defects:
        extra.update(header_ops(rule.response_headers, "response"))
    if rule.redirect is not None:
        return {"redirect": _redirect(rule.redirect, m, defects)}, extra
    route: dict[str, Any]
    if not rule.backends:
        route = {"cluster": names.outbound_cluster(svc, port.port)}
    else:
        clusters = [c for b in rule.backends
                    if (b.weight > 0 or "weights-ignored" in defects)
                    and (c := _backend_cluster(reg, svc, b, port, defects)) is not None]
        if not clusters:
            # Gateway API: a rule whose backends are all invalid or weighted 0 answers 500.
            return {"direct_response": {"status": 500}}, extra
        route = {"weighted_clusters": {"clusters": clusters}}
    if rule.rewrite is not None and "rewrite-dropped" not in defects:
        if rule.rewrite.hostname:
            route["host_rewrite_literal"] = rule.rewrite.hostname
        if rule.rewrite.path_full:
            route.update(_full_rewrite(rule.rewrite.path_full))
        elif rule.rewrite.path_prefix:
            route.update(_prefix_rewrite(m, rule.rewrite.path_prefix))
    if rule.timeout_ms and "timeouts-dropped" not in defects:
        route["timeout"] = f"{rule.timeout_ms / 1000:.3f}s"
    return {"route": route}, extra
