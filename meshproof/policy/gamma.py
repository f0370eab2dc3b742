"""Gateway API HTTPRoute and GRPCRoute with a Service parent (GAMMA, mesh routing).

Mapping decisions (docs/policy.md says the same to users):

- Each Service ``parentRef`` (optionally with its ``port``) gets one
  ``HTTPRoute`` intent holding every rule in order; the mesh orders them by
  Gateway API's precedence. A Gateway parent (north-south) is refused:
  meshproof tests mesh traffic.
- A route in another namespace than its parent Service is a consumer route
  (it applies to callers in its own namespace only); the route's backends
  must be Services in the parent's namespace (ReferenceGrant is not
  supported).
- Matches: path (Exact, PathPrefix, RegularExpression), Exact headers,
  method, Exact query parameters. Filters: Request/ResponseHeaderModifier
  (on a rule and on a backendRef), RequestRedirect, URLRewrite. A rule
  without backendRefs (and no redirect) goes to the parent Service.
- ``timeouts.request`` -> the rule's timeout.
- GRPCRoute: a method match is the HTTP/2 path ``/service/method``
  (Exact: service and/or method; RegularExpression: patterns for either),
  plus Exact headers; header modifier filters; weighted backendRefs. The
  method is kept as written too: GRPCRoute's precedence counts the
  characters of service, then method (:func:`meshproof.routing.grpc_precedence_key`).

Every list is bounded as Gateway API's CRDs bound it, so a hostile file
cannot make the mesh program thousands of routes from one resource.
"""

from __future__ import annotations

import re

from meshproof.intent import (HeaderModifier, HTTPMatch, HTTPRoute, Redirect, Rewrite,
                              RouteBackend, RouteRule)
from meshproof.matching import GRPCMethod
from meshproof.policy.context import Context, Produced, build, check_weights
from meshproof.policy.duration import parse_duration_ms
from meshproof.policy.errors import FieldError
from meshproof.policy.fields import Obj
from meshproof.policy.matches import (exact_pairs, gateway_match, header_name, header_value,
                                      path_regex)
from meshproof.policy.preview import preview
from meshproof.policy.preview import text as quoted
from meshproof.policy.resource import Resource

GATEWAY_API = "gateway.networking.k8s.io/v1"
_REF = frozenset({"group", "kind", "name", "namespace", "port"})
_RULE = frozenset({"matches", "backendRefs", "timeouts", "name", "filters"})
_GRPC_RULE = frozenset({"matches", "backendRefs", "name", "filters"})
#: Gateway API fields meshproof does not map, with what to do instead.
_UNSUPPORTED_SPEC = {"hostnames": "remove hostnames: a GAMMA route applies to its parent "
                                  "Service, whatever the Host header says"}
_UNSUPPORTED_RULE = {"retry": "use the Retry kind (policy.meshproof.dev/v1alpha1)",
                     "sessionPersistence": "remove sessionPersistence"}
_UNSUPPORTED_REF = {"sectionName": "name the Service and, if needed, its port"}
#: Gateway API's range for a backendRef weight.
_MAX_WEIGHT = 1_000_000
#: Gateway API's CRD bounds (standard channel).
MAX_RULES = 16
MAX_MATCHES = 64
MAX_FILTERS = 16
MAX_BACKENDS = 16
MAX_PARENTS = 32
MAX_HEADER_OPS = 16
_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite")
_GRPC_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier")
_UNSUPPORTED_FILTERS = {"RequestMirror": "mirroring is not supported: remove the filter",
                        "ExtensionRef": "extension filters are implementation-specific: remove it",
                        "CORS": "CORS is not supported: remove the filter"}
_HOSTNAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SECTION = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_GRPC_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*")


def _bounded(items: list[tuple[str, object]], at: str, limit: int, what: str) -> None:
    if len(items) > limit:
        raise FieldError(at, f"{len(items)} {what}; Gateway API allows at most {limit}",
                         f"split the resource: at most {limit} {what} each")


def _service_ref(item: object, at: str, default_ns: str, what: str) -> tuple[Obj, str, str]:
    """A parent or backend Service reference (its port checked by the caller)."""
    ref = Obj(item, at, _REF | ({"weight", "filters"} if what == "backend" else set()),
              {"name"}, _UNSUPPORTED_REF)
    kind = ref.text("kind", "Service")
    if kind != "Service":
        raise FieldError(ref.at("kind"), f"{what} kind {quoted(kind)} is not supported",
                         "meshproof routes mesh traffic: reference a Service (GAMMA); "
                         "Gateway parents are north-south and not tested here")
    if ref.raw("group") not in (None, ""):
        raise FieldError(ref.at("group"), f"group {preview(ref.raw('group'))} is not the core group",
                         'a Service is in the core group: group: "" (or omit it)')
    ref.integer("port", lo=1, hi=65535)
    return ref, ref.name("namespace", default_ns), ref.name("name")


def _port(ref: Obj, ns: str, name: str, ctx: Context) -> int:
    if not ref.has("port"):
        return 0
    port = ref.integer("port")
    ctx.port(ns, name, port, ref.at("port"))
    return port


def _parents(spec: Obj, res: Resource, ctx: Context) -> list[tuple[str, int]]:
    parents: list[tuple[str, int]] = []
    items = spec.items("parentRefs", nonempty=True)
    _bounded(items, spec.at("parentRefs"), MAX_PARENTS, "parentRefs")
    for at, item in items:
        ref, ns, name = _service_ref(item, at, res.namespace, "parent")
        parent = (ctx.service(ns, name, ref.at("name")), _port(ref, ns, name, ctx))
        if parent in parents:
            raise FieldError(ref.at("name"), f"parent {parent[0]} is listed twice"
                             + (f" on port {parent[1]}" if parent[1] else ""),
                             "list each parent Service (and port) once")
        parents.append(parent)
    return parents


def read_http_route(res: Resource, ctx: Context) -> Produced:
    return _read_route(res, ctx, grpc=False)


def read_grpc_route(res: Resource, ctx: Context) -> Produced:
    return _read_route(res, ctx, grpc=True)


def _read_route(res: Resource, ctx: Context, grpc: bool) -> Produced:
    spec = Obj(res.spec, "spec", {"parentRefs", "rules"}, {"parentRefs"}, _UNSUPPORTED_SPEC)
    parents = _parents(spec, res, ctx)
    items = spec.items("rules")
    _bounded(items, spec.at("rules"), MAX_RULES, "rules")
    produced: Produced = []
    for service, port in parents:
        ns = service.split("/")[0]
        rules, names = [], set()
        for at, item in items:
            rule = (_grpc_rule if grpc else _http_rule)(Obj(
                item, at, _GRPC_RULE if grpc else _RULE, unsupported=_UNSUPPORTED_RULE), ns, ctx)
            if rule.name and rule.name in names:
                raise FieldError(f"{at}.name", f"rule name {quoted(rule.name)} is used twice",
                                 "rule names are unique within a route")
            names.add(rule.name)
            rules.append(rule)
        route = build(spec.at("rules"), HTTPRoute, res.ref, service, tuple(rules), port,
                      grpc)
        produced.append((route, spec.at("parentRefs")))
    return produced


def _rule_name(rule: Obj) -> str:
    name = rule.text("name")
    if name and (len(name) > 253 or not _SECTION.fullmatch(name)):
        raise FieldError(rule.at("name"), f"rule name {quoted(name)} is not a valid name",
                         "lower-case letters, digits and '-' (a DNS label)")
    return name


def _http_rule(rule: Obj, ns: str, ctx: Context) -> RouteRule:
    items = rule.items("matches")
    _bounded(items, rule.at("matches"), MAX_MATCHES, "matches")
    matches = tuple(gateway_match(v, at) for at, v in items)
    filters = _filters(rule, _FILTERS)
    redirect, rewrite = filters.get("RequestRedirect"), filters.get("URLRewrite")
    if redirect is not None and rewrite is not None:
        raise FieldError(rule.at("filters"), "RequestRedirect and URLRewrite on one rule",
                         "a redirected request is never forwarded: keep one of them")
    for f in (redirect, rewrite):
        if f is not None and f.path_prefix and not all(m.path_prefix or not m.has_path
                                                       for m in matches):
            raise FieldError(rule.at("filters"), "ReplacePrefixMatch needs every match of "
                             "the rule to be a PathPrefix", "use ReplaceFullPath, or match "
                             "with type PathPrefix")
    timeout = 0
    if rule.has("timeouts"):
        t = rule.child("timeouts", {"request", "backendRequest"})
        if t.has("backendRequest"):
            raise FieldError(t.at("backendRequest"), "backendRequest is not supported",
                             "use timeouts.request (per-try timeouts: the Retry kind)")
        if t.has("request"):
            timeout = parse_duration_ms(t.raw("request"), t.at("request"))
    return build(rule.path, RouteRule, name=_rule_name(rule),
                 matches=tuple(m for m in matches),
                 backends=_backends(rule, ns, ctx), request_headers=filters.get(
                     "RequestHeaderModifier"),
                 response_headers=filters.get("ResponseHeaderModifier"),
                 redirect=redirect, rewrite=rewrite, timeout_ms=timeout)


def _grpc_rule(rule: Obj, ns: str, ctx: Context) -> RouteRule:
    items = rule.items("matches")
    _bounded(items, rule.at("matches"), MAX_MATCHES, "matches")
    filters = _filters(rule, _GRPC_FILTERS)
    return build(rule.path, RouteRule, name=_rule_name(rule),
                 matches=tuple(_grpc_match(v, at) for at, v in items),
                 backends=_backends(rule, ns, ctx),
                 request_headers=filters.get("RequestHeaderModifier"),
                 response_headers=filters.get("ResponseHeaderModifier"))


def _grpc_match(value: object, at: str) -> HTTPMatch:
    """A GRPCRouteMatch: gRPC's method is the path ``/package.Service/Method``."""
    m = Obj(value, at, {"method", "headers"})
    path: dict[str, object] = {}
    if m.has("method"):
        meth = m.child("method", {"type", "service", "method"})
        kind = meth.text("type", "Exact", ("Exact", "RegularExpression"))
        service, method = meth.text("service"), meth.text("method")
        if not service and not method:
            raise FieldError(meth.path, "a method match names neither service nor method",
                             "give service, method or both (or omit method to match all)")
        if kind == "Exact":
            for key, val, pat in (("service", service, _GRPC_NAME),
                                  ("method", method, re.compile(r"[A-Za-z_][A-Za-z_0-9]*"))):
                if val and not pat.fullmatch(val):
                    raise FieldError(meth.at(key), f"{quoted(val)} is not a gRPC {key} name",
                                     "letters, digits, '_' (and '.' between package parts)")
            if service and method:
                path = {"path_exact": f"/{service}/{method}"}
            elif service:
                path = {"path_prefix": f"/{service}"}
            else:
                path = {"path_regex": f"/[^/]+/{method}"}
        else:
            regex = f"/(?:{service or '[^/]+'})/(?:{method or '[^/]+'})"
            path = {"path_regex": path_regex(regex, meth.path)}
        path["grpc"] = GRPCMethod(kind, service, method)
    headers = exact_pairs(m, "headers", "header", header_name)
    return build(at, HTTPMatch, headers=tuple(sorted(headers)), **path)


def _filters(owner: Obj, allowed: tuple[str, ...]) -> dict[str, object]:
    """A rule's or backendRef's filters by type (each type at most once)."""
    out: dict[str, object] = {}
    items = owner.items("filters")
    _bounded(items, owner.at("filters"), MAX_FILTERS, "filters")
    for at, item in items:
        f = Obj(item, at, {"type", "requestHeaderModifier", "responseHeaderModifier",
                           "requestRedirect", "urlRewrite"}, {"type"},
                {"requestMirror": _UNSUPPORTED_FILTERS["RequestMirror"],
                 "extensionRef": _UNSUPPORTED_FILTERS["ExtensionRef"],
                 "cors": _UNSUPPORTED_FILTERS["CORS"]})
        kind = f.text("type")
        if kind in _UNSUPPORTED_FILTERS:
            raise FieldError(f.at("type"), f"filter {kind} is not supported",
                             _UNSUPPORTED_FILTERS[kind])
        if kind not in allowed:
            raise FieldError(f.at("type"), f"filter {quoted(kind)} is not allowed here",
                             f"filters here: {', '.join(allowed)}")
        if kind in out:
            raise FieldError(f.at("type"), f"filter {kind} is given twice",
                             "merge them into one filter")
        field = kind[0].lower() + kind[1:]
        field = "urlRewrite" if kind == "URLRewrite" else field
        if not f.has(field):
            raise FieldError(f.at(field), f"filter {kind} has no {field}",
                             f"add {field}: {{...}}")
        for other in ("requestHeaderModifier", "responseHeaderModifier", "requestRedirect",
                      "urlRewrite"):
            if other != field and f.has(other):
                raise FieldError(f.at(other), f"{other} given on a {kind} filter",
                                 f"a filter of type {kind} carries {field} only")
        if kind.endswith("HeaderModifier"):
            out[kind] = _header_modifier(f.child(field, {"set", "add", "remove"}))
        elif kind == "RequestRedirect":
            out[kind] = _redirect(f.child(field, {"scheme", "hostname", "port", "path",
                                                  "statusCode"}))
        else:
            out[kind] = _rewrite(f.child(field, {"hostname", "path"}))
    return out


def _header_modifier(m: Obj) -> HeaderModifier:
    seen: dict[str, str] = {}

    def once(name: str, at: str) -> str:
        low = header_name(name, at)
        if low in seen:
            raise FieldError(at, f"header {quoted(name)} is modified twice ({seen[low]})",
                             "each header once per filter (names ignore case)")
        seen[low] = at
        return low

    pairs: dict[str, list[tuple[str, str]]] = {"set": [], "add": []}
    for op in ("set", "add"):
        items = m.items(op)
        _bounded(items, m.at(op), MAX_HEADER_OPS, f"headers to {op}")
        for at, item in items:
            h = Obj(item, at, {"name", "value"}, {"name", "value"})
            value = h.raw("value")
            if not isinstance(value, str):
                raise FieldError(h.at("value"), f"must be a string, got {preview(value)}")
            pairs[op].append((once(h.text("name"), h.at("name")),
                              header_value(value, h.at("value")) if value else ""))
    removes = m.strs("remove")
    if len(removes) > MAX_HEADER_OPS:
        raise FieldError(m.at("remove"), f"{len(removes)} headers to remove; Gateway API "
                         f"allows at most {MAX_HEADER_OPS}", "split the filter")
    remove = tuple(once(n, f"{m.at('remove')}[{i}]") for i, n in enumerate(removes))
    if not (pairs["set"] or pairs["add"] or remove):
        raise FieldError(m.path, "the header modifier sets, adds and removes nothing",
                         "give set, add or remove (or drop the filter)")
    return HeaderModifier(tuple(pairs["set"]), tuple(pairs["add"]), remove)


def _hostname(o: Obj) -> str:
    host = o.text("hostname")
    if host and not _HOSTNAME.fullmatch(host):
        raise FieldError(o.at("hostname"), f"{quoted(host)} is not a precise hostname",
                         "lower-case DNS name without a port or wildcard, e.g. example.org")
    return host


def _path_modifier(o: Obj) -> tuple[str, str]:
    """(full, prefix) from a redirect's or rewrite's ``path``."""
    if not o.has("path"):
        return "", ""
    p = o.child("path", {"type", "replaceFullPath", "replacePrefixMatch"}, {"type"})
    kind = p.text("type", choices=("ReplaceFullPath", "ReplacePrefixMatch"))
    key = "replaceFullPath" if kind == "ReplaceFullPath" else "replacePrefixMatch"
    other = "replacePrefixMatch" if kind == "ReplaceFullPath" else "replaceFullPath"
    if p.has(other):
        raise FieldError(p.at(other), f"{other} given with type {kind}", f"give {key} only")
    value = p.text(key)
    if not value.startswith("/") or len(value) > 1024 or not re.fullmatch(r"[!-~]*", value):
        raise FieldError(p.at(key), f"{quoted(value)} is not a path",
                         "a path starts with '/', has no spaces or control characters and "
                         "at most 1024 characters")
    if "?" in value or "#" in value:
        raise FieldError(p.at(key), f"path {quoted(value)} has a query or fragment",
                         "give the path only")
    return (value, "") if kind == "ReplaceFullPath" else ("", value)


def _redirect(o: Obj) -> Redirect:
    full, prefix = _path_modifier(o)
    return build(o.path, Redirect, scheme=o.text("scheme", "", ("http", "https")),
                 hostname=_hostname(o), port=o.integer("port", 0, lo=1, hi=65535),
                 path_full=full, path_prefix=prefix,
                 status=_status(o))


def _status(o: Obj) -> int:
    status = o.integer("statusCode", 302)
    if status not in (301, 302, 303, 307, 308):
        raise FieldError(o.at("statusCode"), f"redirect status {status} is not supported",
                         "one of 301, 302 (core), 303, 307, 308 (extended)")
    return status


def _rewrite(o: Obj) -> Rewrite:
    full, prefix = _path_modifier(o)
    host = _hostname(o)
    if not (full or prefix or host):
        raise FieldError(o.path, "the rewrite changes nothing", "give hostname and/or path")
    return Rewrite(hostname=host, path_full=full, path_prefix=prefix)


def _backends(rule: Obj, namespace: str, ctx: Context) -> tuple[RouteBackend, ...]:
    backends: list[RouteBackend] = []
    items = rule.items("backendRefs")
    _bounded(items, rule.at("backendRefs"), MAX_BACKENDS, "backendRefs")
    for at, item in items:
        ref, ns, name = _service_ref(item, at, namespace, "backend")
        if ns != namespace:
            raise FieldError(ref.at("namespace"), f"backend namespace {ns} is not the parent's "
                             f"({namespace})", "backends must be Services in the parent's "
                             "namespace (ReferenceGrant is not supported)")
        ctx.service(ns, name, ref.at("name"))
        port = _port(ref, ns, name, ctx)
        if any(b.service == name and b.port == port for b in backends):
            raise FieldError(ref.at("name"), f"backend {name} is listed twice",
                             "merge the weights of duplicate backends")
        filters = _filters(ref, ("RequestHeaderModifier", "ResponseHeaderModifier"))
        backends.append(RouteBackend(
            name, ref.integer("weight", 1, lo=0, hi=_MAX_WEIGHT), port,
            filters.get("RequestHeaderModifier"),  # type: ignore[arg-type]
            filters.get("ResponseHeaderModifier")))  # type: ignore[arg-type]
    if backends:
        check_weights(backends, rule.at("backendRefs"))  # type: ignore[arg-type]
    return tuple(backends)
