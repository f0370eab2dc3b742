"""SMI kinds: HTTPRouteGroup, TCPRoute, TrafficSplit (v1alpha4), TrafficTarget (v1alpha3).

Mapping decisions (docs/policy.md says the same to users):

- An HTTPRouteGroup produces no intent; it names matches that TrafficSplits
  and TrafficTargets in the same namespace reference.
- A TrafficSplit becomes one intent keyed by its root service, and the
  intent holds at most one match. So a split may reference at most one
  match in all (one HTTPRouteGroup with one entry); more is refused rather
  than silently narrowed to the first.
- A TrafficTarget becomes an AccessRule whose routes are the referenced
  matches (a rule without ``matches`` takes all of its group's). It does
  not switch access control on: only a namespace (or mesh) whose AccessMode
  is ``smi`` denies by default, so a TrafficTarget can be loaded and
  removed without changing what is denied elsewhere.
"""

from __future__ import annotations

from meshproof.intent import AccessRule, Backend, HTTPMatch, TrafficSplit
from meshproof.policy.context import Context, Produced, RouteGroup, build, check_weights
from meshproof.policy.errors import FieldError
from meshproof.policy.fields import Obj
from meshproof.policy.limits import UINT32_MAX
from meshproof.policy.preview import text as quoted
from meshproof.policy.matches import SMI_MATCH_FIELDS, smi_match
from meshproof.policy.resource import Resource

SPLIT_API = "split.smi-spec.io/v1alpha4"
ACCESS_API = "access.smi-spec.io/v1alpha3"
SPECS_API = "specs.smi-spec.io/v1alpha4"


def read_route_group(res: Resource, ctx: Context) -> Produced:
    """Record the group's matches for later references; no intent of its own."""
    spec = Obj(res.spec, "spec", {"matches"}, {"matches"})
    matches: dict[str, HTTPMatch] = {}
    for at, item in spec.items("matches", nonempty=True):
        m = Obj(item, at, SMI_MATCH_FIELDS, {"name"})
        name = m.name("name")
        if name in matches:
            raise FieldError(m.at("name"), f"match name {quoted(name)} is used twice in this group")
        matches[name] = smi_match(m)
    ctx.route_groups[res.ref] = RouteGroup(res.ref, matches)
    return []


def read_tcp_route(res: Resource, ctx: Context) -> Produced:
    """A TCPRoute: connection-level access for the TrafficTargets that reference it (any
    port of the destination); no intent of its own."""
    spec = Obj(res.spec if res.spec is not None else {}, "spec", {"matches"}, set())
    if spec.has("matches"):
        raise FieldError(spec.at("matches"), "TCPRoute port matches are not supported",
                         "omit spec.matches: the TCPRoute then covers every port")
    ctx.tcp_routes.add(res.ref)
    return []


def _group_ref(item: object, at: str, res: Resource, ctx: Context,
               with_matches: bool, tcp: bool = False) -> tuple[RouteGroup | None, Obj]:
    """The HTTPRouteGroup a rule references; with ``tcp``, a TCPRoute reference gives
    (None, ref) once checked to exist."""
    known = {"kind", "name", "apiGroup"} | ({"matches"} if with_matches else set())
    ref = Obj(item, at, known, {"kind", "name"})
    kind = ref.text("kind")
    if tcp and kind == "TCPRoute":
        ref.text("apiGroup", choices=("specs.smi-spec.io",))
        name = f"{res.namespace}/{ref.name('name')}"
        if name not in ctx.tcp_routes:
            raise FieldError(ref.at("name"), f"TCPRoute {name} is not defined",
                             "load the TCPRoute together with the TrafficTarget")
        if ref.has("matches"):
            raise FieldError(ref.at("matches"), "a TCPRoute rule has no matches to pick",
                             "drop matches from this rule")
        return None, ref
    if kind != "HTTPRouteGroup":
        raise FieldError(ref.at("kind"), f"{quoted(kind)} routes are not supported",
                         "reference an HTTPRouteGroup" + (" or a TCPRoute" if tcp else "")
                         + " (UDPRoute is not supported)")
    ref.text("apiGroup", choices=("specs.smi-spec.io",))
    return ctx.route_group(res.namespace, ref.name("name"), ref.at("name")), ref


def read_traffic_split(res: Resource, ctx: Context) -> Produced:
    """A TrafficSplit -> one TrafficSplit intent on ``namespace/spec.service``."""
    spec = Obj(res.spec, "spec", {"service", "backends", "matches"}, {"service", "backends"})
    root = ctx.service(res.namespace, spec.name("service"), spec.at("service"))
    backends = []
    for at, item in spec.items("backends", nonempty=True):
        b = Obj(item, at, {"service", "weight"}, {"service", "weight"})
        name = ctx.service(res.namespace, b.name("service"), b.at("service"))
        backends.append(Backend(name.split("/")[1], b.integer("weight", lo=0, hi=UINT32_MAX)))
    check_weights(backends, spec.at("backends"))
    found: list[tuple[str, HTTPMatch]] = []
    for at, item in spec.items("matches"):
        group, _ = _group_ref(item, at, res, ctx, with_matches=False)
        found += [(f"{group.ref}#{n}", m) for n, m in group.matches.items()]
    if len(found) > 1:
        raise FieldError(spec.at("matches"), f"references {len(found)} matches "
                         f"({', '.join(n for n, _ in found)}); a split holds at most one",
                         "reference one HTTPRouteGroup with a single match, or combine the "
                         "paths into one pathRegex ('/a|/b')")
    match = found[0][1] if found else None
    split = build("spec", TrafficSplit, root, tuple(backends), match)
    return [(split, "spec.service")]


def _identity(item: object, at: str, default_ns: str) -> str:
    sa = Obj(item, at, {"kind", "name", "namespace"}, {"kind", "name"})
    sa.text("kind", choices=("ServiceAccount",))
    return f"{sa.name('namespace', default_ns)}/{sa.name('name')}"


def read_traffic_target(res: Resource, ctx: Context) -> Produced:
    """A TrafficTarget -> an AccessRule (identities ``namespace/serviceaccount``).

    A source or destination without ``namespace`` is in the TrafficTarget's.
    """
    spec = Obj(res.spec, "spec", {"destination", "sources", "rules"},
               {"destination", "sources", "rules"})
    destination = _identity(spec.raw("destination"), spec.at("destination"), res.namespace)
    if destination.split("/")[0] != res.namespace:
        raise FieldError(spec.at("destination.namespace"),
                         f"destination {destination} is not in the TrafficTarget's namespace "
                         f"{res.namespace}", "put the TrafficTarget in its destination's namespace")
    sources = [_identity(item, at, res.namespace) for at, item in spec.items("sources", True)]
    routes: list[HTTPMatch] = []
    l4 = False
    for at, item in spec.items("rules", nonempty=True):
        group, ref = _group_ref(item, at, res, ctx, with_matches=True, tcp=True)
        if group is None:
            l4 = True  # a TCPRoute: the whole connection, whatever it carries
            continue
        names = ref.strs("matches", nonempty=True) if ref.has("matches") else list(group.matches)
        for i, name in enumerate(names):
            if name not in group.matches:
                raise FieldError(f"{ref.at('matches')}[{i}]",
                                 f"HTTPRouteGroup {group.ref} has no match {quoted(name)}",
                                 f"its matches: {', '.join(group.matches)}")
            if group.matches[name] not in routes:
                routes.append(group.matches[name])
    # A TCPRoute rule allows connections (any port, any bytes): that subsumes every HTTP
    # route, so the AccessRule has no route conditions (allowed at L4 and L7).
    rule = build("spec", AccessRule, res.ref, destination, tuple(sources),
                 () if l4 else tuple(routes))
    return [(rule, "metadata.name")]
