"""Gateway API HTTPRoute with a Service parent (GAMMA, mesh routing).

Mapping decisions (docs/policy.md says the same to users):

- Each Service ``parentRef`` gets the route's intents; a Gateway parent
  (north-south) is refused: meshproof tests mesh traffic.
- The intents hold one split and one timeout per service, without the
  route's rule list, so a route has exactly one rule, with at most one
  match. A second rule or match is refused rather than dropped.
- ``backendRefs`` (Services in the parent's namespace, ``weight`` default 1)
  -> a TrafficSplit on the parent; a rule without backendRefs routes to the
  parent as usual (GAMMA) and makes no split.
- ``timeouts.request`` -> a Timeout on the parent. The Timeout intent covers
  every request to the service, so a timeout on a rule with a match is
  refused (it would widen the timeout to unmatched requests).
"""

from __future__ import annotations

from meshproof.intent import Backend, HTTPMatch, Timeout, TrafficSplit
from meshproof.policy.context import Context, Produced, build, check_weights
from meshproof.policy.duration import parse_duration_ms
from meshproof.policy.errors import FieldError
from meshproof.policy.fields import Obj
from meshproof.policy.preview import preview
from meshproof.policy.preview import text as quoted
from meshproof.policy.matches import gateway_match
from meshproof.policy.resource import Resource

GATEWAY_API = "gateway.networking.k8s.io/v1"
_REF = frozenset({"group", "kind", "name", "namespace", "port"})
_RULE = frozenset({"matches", "backendRefs", "timeouts", "name"})
#: Gateway API fields meshproof does not map, with what to do instead.
_UNSUPPORTED_SPEC = {"hostnames": "remove hostnames: a GAMMA route applies to its parent "
                                  "Service"}
_UNSUPPORTED_RULE = {"filters": "remove filters (header rewrites, mirrors, redirects)",
                     "retry": "use the Retry kind (policy.meshproof.dev/v1alpha1)",
                     "sessionPersistence": "remove sessionPersistence"}
_UNSUPPORTED_REF = {"sectionName": "name the Service and, if needed, its port"}
_UNSUPPORTED_BACKEND = {"filters": "remove the backend's filters"}
#: Gateway API's range for a backendRef weight.
_MAX_WEIGHT = 1_000_000


def _service_ref(item: object, at: str, default_ns: str, what: str) -> tuple[Obj, str, str]:
    """A parent or backend Service reference; its port, if given, must be the Service's."""
    unsupported = {**_UNSUPPORTED_REF, **(_UNSUPPORTED_BACKEND if what == "backend" else {})}
    ref = Obj(item, at, _REF | ({"weight"} if what == "backend" else set()), {"name"},
              unsupported)
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


def _check_port(ref: Obj, ns: str, name: str, ctx: Context) -> None:
    if ref.has("port"):
        ctx.port(ns, name, ref.integer("port"), ref.at("port"))


def read_http_route(res: Resource, ctx: Context) -> Produced:
    spec = Obj(res.spec, "spec", {"parentRefs", "rules"}, {"parentRefs"}, _UNSUPPORTED_SPEC)
    parents = []
    for at, item in spec.items("parentRefs", nonempty=True):
        ref, ns, name = _service_ref(item, at, res.namespace, "parent")
        parent = ctx.service(ns, name, ref.at("name"))
        _check_port(ref, ns, name, ctx)
        if parent in parents:
            raise FieldError(ref.at("name"), f"parent {parent} is listed twice",
                             "list each parent Service once")
        parents.append(parent)
    rules = spec.items("rules")
    if len(rules) > 1:
        raise FieldError(rules[1][0], f"the route has {len(rules)} rules; meshproof maps one",
                         "split the rules into one HTTPRoute each, on different parents, or "
                         "merge them (the intents hold one split per service)")
    if not rules:
        return []
    at, item = rules[0]
    rule = Obj(item, at, _RULE, unsupported=_UNSUPPORTED_RULE)
    match = _rule_match(rule)
    produced: Produced = []
    for parent in parents:
        ns = parent.split("/")[0]
        backends = _backends(rule, ns, ctx)
        if backends:
            split = build(rule.at("backendRefs"), TrafficSplit, parent, tuple(backends), match)
            produced.append((split, rule.at("backendRefs")))
        if rule.has("timeouts"):
            produced += _timeout(rule, parent, match)
    return produced


def _rule_match(rule: Obj) -> HTTPMatch | None:
    matches = rule.items("matches")
    if len(matches) > 1:
        raise FieldError(matches[1][0], f"the rule has {len(matches)} matches; a split "
                         "holds at most one", "combine them into one match (a path regex "
                         "'/a|/b' with type RegularExpression) or use one HTTPRoute per match")
    match = gateway_match(matches[0][1], matches[0][0]) if matches else None
    return None if match == HTTPMatch() else match


def _backends(rule: Obj, namespace: str, ctx: Context) -> list[Backend]:
    backends: list[Backend] = []
    for at, item in rule.items("backendRefs"):
        ref, ns, name = _service_ref(item, at, namespace, "backend")
        if ns != namespace:
            raise FieldError(ref.at("namespace"), f"backend namespace {ns} is not the parent's "
                             f"({namespace})", "backends must be Services in the parent's "
                             "namespace (ReferenceGrant is not supported)")
        ctx.service(ns, name, ref.at("name"))
        _check_port(ref, ns, name, ctx)
        if any(b.service == name for b in backends):
            raise FieldError(ref.at("name"), f"backend {name} is listed twice",
                             "merge the weights of duplicate backends")
        backends.append(Backend(name, ref.integer("weight", 1, lo=0, hi=_MAX_WEIGHT)))
    if backends:
        check_weights(backends, rule.at("backendRefs"))
    return backends


def _timeout(rule: Obj, parent: str, match: HTTPMatch | None) -> Produced:
    t = rule.child("timeouts", {"request", "backendRequest"})
    if t.has("backendRequest"):
        raise FieldError(t.at("backendRequest"), "backendRequest is not supported",
                         "use timeouts.request (per-try timeouts: the Retry kind)")
    if not t.has("request"):
        return []
    if match is not None:
        raise FieldError(t.at("request"), "a timeout on a rule with a match is not supported",
                         "the Timeout intent covers every request to the service: put the "
                         "timeout in an HTTPRoute whose rule has no match")
    ms = parse_duration_ms(t.raw("request"), t.at("request"))
    if ms == 0:
        raise FieldError(t.at("request"), "a zero timeout (no timeout) is not supported",
                         "omit timeouts to have none")
    return [(build(t.at("request"), Timeout, parent, ms), t.at("request"))]
