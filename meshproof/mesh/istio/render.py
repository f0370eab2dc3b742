"""Intents -> Istio resources (networking.istio.io/v1, security.istio.io/v1): pure functions.

One VirtualService and at most one DestinationRule per service, combining
every intent on it, because Istio merges neither (two VirtualServices for one
host are undefined behaviour):
- TrafficSplit -> VirtualService weighted route to DestinationRule subsets
  (a backend service whose selector is the root's plus labels becomes a
  subset of the root host; any other backend is routed to as its own host);
  weights normalised to integers summing to 100. A match -> an ``http``
  entry with ``match`` (one HTTPMatchRequest per method: Istio's method is a
  single StringMatch), before the default route.
- Retry -> ``retries`` (attempts = N retries, i.e. up to N+1 attempts;
  perTryTimeout; retryOn joined with commas); Timeout -> ``timeout``;
  Fault -> ``fault`` (abort httpStatus / delay fixedDelay, percentage.value).
- OutlierDetection -> DestinationRule ``trafficPolicy.outlierDetection``.
- MTLSMode -> PeerAuthentication (mesh: ``default`` in the root namespace,
  namespace: ``default`` there, workload: a selector on meshproof's workload label).
- AccessMode smi -> an allow-nothing AuthorizationPolicy (``spec: {}``) for the
  namespace (or mesh); AccessRule -> ALLOW policy (principals, namespaces for
  ``ns/*``, paths, methods, header conditions), only where the destination's
  mode is smi (an ALLOW policy alone would already deny everyone else in Istio).

Paths: Istio's AuthorizationPolicy matches exact, ``prefix*``, ``*suffix`` or
``*``, not regexes; a path regex that is not a literal or literal + ``.*`` is
refused (``Unsupported``) rather than silently widened.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshproof.errors import ConfigError
from meshproof.intent import (AccessMode, AccessRule, Fault, HTTPMatch, Intent, MTLSMode,
                              OutlierDetection, Retry, Scope, Timeout, TrafficSplit)
from meshproof.topology import Topology, fixture_topology

NETWORKING = "networking.istio.io/v1"
SECURITY = "security.istio.io/v1"
ROOT_NAMESPACE = "istio-system"
WORKLOAD_LABEL = "meshproof.io/workload"
Doc = dict[str, Any]


class Unsupported(ConfigError):
    """An intent Istio cannot express faithfully."""


@dataclass(frozen=True)
class Context:
    """What rendering needs to know about the topology: service selectors (subsets) and
    the labels of workloads by service account (AuthorizationPolicy selectors)."""

    selectors: dict[str, dict[str, str]] = field(default_factory=dict)
    sa_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    root_namespace: str = ROOT_NAMESPACE
    trust_domain: str = "cluster.local"
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, topo: Topology | None = None, labels: dict[str, str] | None = None,
           root_namespace: str = ROOT_NAMESPACE) -> Context:
        topo = topo or fixture_topology()
        sels = {f"{s.namespace}/{s.name}": dict(s.selector) for s in topo.services}
        by_sa: dict[str, list[dict[str, str]]] = {}
        for w in topo.workloads:
            by_sa.setdefault(f"{w.namespace}/{w.sa}", []).append(
                {**w.labels, WORKLOAD_LABEL: w.name})
        common = {sa: {k: v for k, v in ls[0].items() if all(x.get(k) == v for x in ls)}
                  for sa, ls in by_sa.items()}
        return cls(sels, common, root_namespace, labels=dict(labels or {}))


def fqdn(ns_service: str) -> str:
    ns, name = ns_service.split("/", 1)
    return f"{name}.{ns}.svc.cluster.local"


def _doc(api: str, kind: str, name: str, namespace: str, spec: Doc, ctx: Context) -> Doc:
    meta: Doc = {"name": name, "namespace": namespace}
    if ctx.labels:
        meta["labels"] = dict(ctx.labels)
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def _dur(ms: int) -> str:
    return f"{ms / 1000:g}s" if ms % 1000 == 0 else f"{ms}ms"


def percentages(weights: list[int]) -> list[int]:
    """Relative weights -> integers summing to 100 (largest remainder, stable)."""
    total = sum(weights)
    raw = [w * 100 / total for w in weights]
    out = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))[:100 - sum(out)]:
        out[i] += 1
    return out


def _string_match_regex(regex: str) -> Doc:
    return {"regex": regex}


def match_requests(m: HTTPMatch) -> list[Doc]:
    """An HTTPMatch as Istio HTTPMatchRequests (ORed: one per method)."""
    base: Doc = {}
    if m.path_regex:
        base["uri"] = _string_match_regex(m.path_regex)
    if m.headers:
        base["headers"] = {k: {"exact": v} for k, v in m.headers}
    if not m.methods:
        return [base]
    return [{**base, "method": {"exact": meth}} for meth in m.methods]


def _subset_of(root: str, backend: str, ctx: Context) -> tuple[str, dict[str, str]] | None:
    """The subset (name, labels) that stands for ``backend`` within ``root``, if any."""
    r, b = ctx.selectors.get(root), ctx.selectors.get(backend)
    if r is None or b is None or not all(b.get(k) == v for k, v in r.items()):
        return None
    extra = {k: v for k, v in b.items() if k not in r}
    if not extra:
        return None
    return backend.split("/", 1)[1], extra


def _split_route(s: TrafficSplit, ctx: Context, subsets: dict[str, dict[str, str]]
                 ) -> list[Doc]:
    pct = percentages([b.weight for b in s.backends])
    route = []
    for b, w in zip(s.backends, pct):
        backend = f"{s.namespace}/{b.service}"
        sub = _subset_of(s.service, backend, ctx)
        if sub is not None:
            subsets[sub[0]] = sub[1]
            dest: Doc = {"host": fqdn(s.service), "subset": sub[0]}
        else:
            dest = {"host": fqdn(backend)}
        route.append({"destination": dest, "weight": w})
    return route


def _service_docs(service: str, intents: list[Intent], ctx: Context) -> list[Doc]:
    ns, name = service.split("/", 1)
    split = next((i for i in intents if isinstance(i, TrafficSplit)), None)
    retry = next((i for i in intents if isinstance(i, Retry)), None)
    timeout = next((i for i in intents if isinstance(i, Timeout)), None)
    fault = next((i for i in intents if isinstance(i, Fault)), None)
    outlier = next((i for i in intents if isinstance(i, OutlierDetection)), None)
    subsets: dict[str, dict[str, str]] = {}
    docs: list[Doc] = []
    if split or retry or timeout or fault:
        default_route = [{"destination": {"host": fqdn(service)}}]
        split_route = _split_route(split, ctx, subsets) if split else default_route

        def entry(m: HTTPMatch | None) -> Doc:
            e: Doc = {}
            if m is not None:
                e["match"] = match_requests(m)
            if fault and fault.match == m:
                f: Doc = {}
                if fault.delay_ms and fault.delay_percent:
                    f["delay"] = {"fixedDelay": _dur(fault.delay_ms),
                                  "percentage": {"value": float(fault.delay_percent)}}
                if fault.abort_status and fault.abort_percent:
                    f["abort"] = {"httpStatus": fault.abort_status,
                                  "percentage": {"value": float(fault.abort_percent)}}
                e["fault"] = f
            e["route"] = copy.deepcopy(split_route if (split and split.match == m)
                                       else default_route)
            if timeout:
                e["timeout"] = _dur(timeout.timeout_ms)
            if retry:
                r: Doc = {"attempts": retry.retries, "retryOn": ",".join(retry.retry_on)}
                if retry.per_try_timeout_ms:
                    r["perTryTimeout"] = _dur(retry.per_try_timeout_ms)
                e["retries"] = r
            return e

        matches: list[HTTPMatch] = []
        for i in (split, fault):
            m = getattr(i, "match", None)
            if m is not None and m not in matches:
                matches.append(m)
        http = [entry(m) for m in matches] + [entry(None)]
        docs.append(_doc(NETWORKING, "VirtualService", name, ns,
                         {"hosts": [fqdn(service)], "http": http}, ctx))
    if subsets or outlier:
        spec: Doc = {"host": fqdn(service)}
        if outlier:
            spec["trafficPolicy"] = {"outlierDetection": {
                "consecutive5xxErrors": outlier.consecutive_5xx,
                "interval": _dur(outlier.interval_ms),
                "baseEjectionTime": _dur(outlier.base_ejection_ms),
                "maxEjectionPercent": outlier.max_ejection_percent}}
        if subsets:
            spec["subsets"] = [{"name": n, "labels": dict(ls)}
                               for n, ls in sorted(subsets.items())]
        docs.append(_doc(NETWORKING, "DestinationRule", name, ns, spec, ctx))
    return docs


def peer_authentication(m: MTLSMode, ctx: Context) -> Doc:
    spec: Doc = {"mtls": {"mode": m.mode.value}}
    if m.scope is Scope.WORKLOAD:
        spec = {"selector": {"matchLabels": {WORKLOAD_LABEL: m.workload}}, **spec}
        return _doc(SECURITY, "PeerAuthentication", f"mtls-{m.workload}", m.namespace,
                    spec, ctx)
    return _doc(SECURITY, "PeerAuthentication", "default",
                m.namespace or ctx.root_namespace, spec, ctx)


_LITERAL = re.compile(r"^(?:[A-Za-z0-9/_~!$&'@,;=:%-]|\\[.+*?()\[\]{}|^$\\-])*$")


def _unescape(rx: str) -> str:
    return re.sub(r"\\(.)", r"\1", rx)


def istio_path(rx: str) -> str | None:
    """A path regex as an AuthorizationPolicy path (None: any path)."""
    body = rx[1:] if rx.startswith("^") else rx
    body = body[:-1] if body.endswith("$") and not body.endswith("\\$") else body
    if body in ("/.*", ".*", "/.+", ""):
        return None
    if body.endswith(".*") and _LITERAL.match(body[:-2]) and "*" not in _unescape(body[:-2]):
        return _unescape(body[:-2]) + "*"
    if _LITERAL.match(body) and "*" not in _unescape(body):
        return _unescape(body)
    raise Unsupported(f"path regex {rx!r} has no Istio AuthorizationPolicy form",
                      "Istio matches paths exactly, by prefix ('/p.*') or suffix; "
                      "write the rule as one of those")


def _principal(ident: str, ctx: Context) -> str:
    ns, sa = ident.split("/", 1)
    return f"{ctx.trust_domain}/ns/{ns}/sa/{sa}"


def authorization_policy(rule: AccessRule, ctx: Context) -> Doc:
    dns, dsa = rule.destination.split("/", 1)
    _, name = rule.name.split("/", 1)
    principals = [_principal(s, ctx) for s in rule.sources if not s.endswith("/*")]
    namespaces = [s.split("/", 1)[0] for s in rule.sources if s.endswith("/*")]
    source: Doc = {}
    if principals:
        source["principals"] = principals
    if namespaces:
        source["namespaces"] = namespaces
    rules: list[Doc] = []
    for r in rule.routes or (HTTPMatch(),):
        one: Doc = {"from": [{"source": source}]}
        op: Doc = {}
        path = istio_path(r.path_regex) if r.path_regex else None
        if path is not None:
            op["paths"] = [path]
        if r.methods:
            op["methods"] = list(r.methods)
        if op:
            one["to"] = [{"operation": op}]
        if r.headers:
            one["when"] = [{"key": f"request.headers[{k}]", "values": [v]} for k, v in r.headers]
        rules.append(one)
    labels = ctx.sa_labels.get(rule.destination)
    if not labels:
        raise Unsupported(f"AccessRule {rule.name}: no workload runs as {rule.destination}",
                          "an Istio AuthorizationPolicy selects workloads by label")
    return _doc(SECURITY, "AuthorizationPolicy", f"allow-{name}", dns,
                {"selector": {"matchLabels": dict(labels)}, "action": "ALLOW",
                 "rules": rules}, ctx)


def allow_nothing(namespace: str, ctx: Context) -> Doc:
    return _doc(SECURITY, "AuthorizationPolicy", "allow-nothing",
                namespace or ctx.root_namespace, {}, ctx)


def _access_mode_of(modes: list[AccessMode], namespace: str) -> str:
    ns = next((m.mode for m in modes if m.namespace == namespace), None)
    mesh = next((m.mode for m in modes if not m.namespace), "permissive")
    return ns or mesh


def render_all(intents: Iterable[Intent], ctx: Context | None = None) -> list[Doc]:
    """Every Istio resource for the whole intent set, in a stable order."""
    ctx = ctx or Context.of()
    # One intent per key, the last one winning (Policy.with_intent's rule).
    intents = list({i.key: i for i in intents}.values())
    docs: list[Doc] = []
    by_service: dict[str, list[Intent]] = {}
    for i in intents:
        if isinstance(i, (TrafficSplit, Retry, Timeout, Fault, OutlierDetection)):
            by_service.setdefault(i.service, []).append(i)
    for m in (i for i in intents if isinstance(i, MTLSMode)):
        docs.append(peer_authentication(m, ctx))
    modes = [i for i in intents if isinstance(i, AccessMode)]
    for m in modes:
        if m.mode == "smi":
            docs.append(allow_nothing(m.namespace, ctx))
    for r in (i for i in intents if isinstance(i, AccessRule)):
        if _access_mode_of(modes, r.destination.split("/", 1)[0]) == "smi":
            docs.append(authorization_policy(r, ctx))
    for service in sorted(by_service):
        docs += _service_docs(service, by_service[service], ctx)
    # Plain data, no shared sub-objects: what goes on the wire (and no YAML anchors).
    return json.loads(json.dumps(docs))  # type: ignore[no-any-return]


def render_intent(intent: Intent, ctx: Context | None = None) -> list[Doc]:
    """One intent alone (golden files per intent); AccessRules with mode smi implied."""
    if isinstance(intent, AccessRule):
        ns = intent.destination.split("/", 1)[0]
        return render_all([AccessMode("smi", ns), intent], ctx)[1:]
    return render_all([intent], ctx)
