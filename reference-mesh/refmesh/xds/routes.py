"""Caller-side (outbound) route configs: split, match, retry, timeout, fault.

Istio semantics: these intents act at the CALLER's sidecar, on the route
for the service it calls. One route config per service; its routes are
"arms" tried in order (first match wins):

- a TrafficSplit with a match: [match -> split, everything else -> root service];
- a TrafficSplit without one: [everything -> split];
- no split: [everything -> root service];
- HTTPRoutes on the service (they win over a split): one arm per route
  rule match, in Gateway API's precedence order (refmesh.xds.httproutes),
  and no catch-all: a request no rule matches gets 404.

A Fault with a match puts, before each arm, a copy of it restricted to the
fault's match and carrying the fault; a Fault without one rides every arm.
Retry and Timeout apply to every arm.
"""

from __future__ import annotations

import copy
from typing import Any

from meshproof.intent import Fault, HTTPRoute, Retry, Timeout, TrafficSplit
from meshproof.targets.model import Registry, Service, ServicePort
from refmesh.xds import names
from refmesh.xds.defects import SLOW_PROXY_DELAY_MS
from refmesh.xds.httproutes import Arm, route_arms
from refmesh.xds.matches import headers_exact_as_prefix, is_empty, route_match
from refmesh.xds.ports import backend_port

FAULT_FILTER = "envoy.filters.http.fault"
_FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

#: The mesh's default retry (Istio has one too): only failures where the request
#: never reached the app, e.g. a pooled upstream connection the server closed
#: while its listener was being updated. Never a response status: an app's
#: 503 is not retried unless a Retry intent says so (which then replaces this).
DEFAULT_RETRY: dict[str, Any] = {
    "retry_on": "connect-failure,refused-stream,reset-before-request", "num_retries": 2}


def fault_filter() -> dict[str, Any]:
    """The fault filter every outbound HCM carries, empty: faults come per route
    (``typed_per_filter_config``), so applying one changes RDS only, never a
    listener (a listener update drains pooled connections)."""
    return {"name": FAULT_FILTER, "typed_config": {"@type": _FAULT_TYPE}}


def _duration(ms: int) -> str:
    return f"{ms / 1000:.3f}s"


def _percent(p: float) -> dict[str, Any]:
    """FractionalPercent per million, so 0.1 % or 12.5 % survive exactly."""
    return {"numerator": int(round(p * 10_000)), "denominator": "MILLION"}


def fault_config(f: Fault | None, defects: frozenset[str]) -> dict[str, Any] | None:
    """Per-route HTTPFault for a Fault intent (and/or the slow-proxy defect)."""
    cfg: dict[str, Any] = {}
    if f is not None and f.abort_status and f.abort_percent:
        # abort-percent-ignored: the percentage dropped, every request aborted.
        pct = 100.0 if "abort-percent-ignored" in defects else f.abort_percent
        cfg["abort"] = {"http_status": f.abort_status, "percentage": _percent(pct)}
    if f is not None and f.delay_ms and f.delay_percent and "fault-delay-dropped" not in defects:
        percent = (min(100.0, f.delay_percent + 10) if "fault-delay-percent-wrong" in defects
                   else f.delay_percent)
        cfg["delay"] = {"fixed_delay": _duration(f.delay_ms), "percentage": _percent(percent)}
    if "slow-proxy" in defects and "delay" not in cfg:
        cfg["delay"] = {"fixed_delay": _duration(SLOW_PROXY_DELAY_MS),
                        "percentage": _percent(100.0)}
    return {"@type": _FAULT_TYPE, **cfg} if cfg else None


def retry_policy(r: Retry | None, defects: frozenset[str]) -> dict[str, Any]:
    """A Retry intent replaces the default: ``retries: 2`` is exactly 3 attempts."""
    if r is None or "retries-dropped" in defects:
        return dict(DEFAULT_RETRY)
    p: dict[str, Any] = {"retry_on": ",".join(r.retry_on), "num_retries": r.retries}
    if r.per_try_timeout_ms:
        p["per_try_timeout"] = _duration(r.per_try_timeout_ms)
    return p


def split_action(reg: Registry, svc: Service, split: TrafficSplit,
                 defects: frozenset[str], port: ServicePort | None = None) -> dict[str, Any]:
    """Weighted clusters over the split's deployed backends (root service if none), on
    ``port`` of each (default: the primary one)."""
    port = port or svc.spec.ports[0]
    weighted = []
    for b in split.backends:
        equal = "weights-ignored" in defects
        if b.weight <= 0 and not equal:
            continue  # a 0-weight backend gets nothing; leaving it out keeps Envoy's sum check simple
        try:
            backend = reg.service(svc.namespace, b.service)
        except KeyError:
            continue  # a backend service not deployed (yet): never route into a void cluster
        to = backend_port(backend, port)
        if to is None:
            continue  # the backend has no such port: never route into a void cluster
        weighted.append({"name": names.outbound_cluster(backend, to),
                         "weight": 1 if equal else b.weight})
    if not weighted:
        return {"cluster": names.outbound_cluster(svc, port.port)}
    return {"weighted_clusters": {"clusters": weighted}}


def route_config(reg: Registry, svc: Service, split: TrafficSplit | None = None, *,
                 retry: Retry | None = None, timeout: Timeout | None = None,
                 fault: Fault | None = None, http_routes: list[HTTPRoute] | None = None,
                 defects: frozenset[str] = frozenset(),
                 port: ServicePort | None = None) -> dict[str, Any]:
    """One virtual host ("*": the listener already picked the service by VIP and port,
    so the Host header never chooses the route: Gateway API's MeshFrontendHostname);
    ``port`` defaults to the service's primary port."""
    port = port or svc.spec.ports[0]
    root = {"route": {"cluster": names.outbound_cluster(svc, port.port)}}
    arms: list[Arm]
    if http_routes:
        arms = route_arms(reg, svc, http_routes, defects, port)
    elif split is None:
        arms = [("default", None, root, {})]
    elif is_empty(split.match):
        arms = [("default", None, {"route": split_action(reg, svc, split, defects, port)},
                 {})]
    else:
        split_match = None if "match-ignored" in defects else split.match
        arms = [("split", split_match,
                 {"route": split_action(reg, svc, split, defects, port)}, {}),
                ("default", None, root, {})]

    common: dict[str, Any] = {"retry_policy": retry_policy(retry, defects)}
    if timeout is not None and "timeouts-dropped" not in defects:
        common["timeout"] = _duration(timeout.timeout_ms)
        if "timeout-per-try" in defects and "per_try_timeout" in common["retry_policy"] \
                and retry is not None:
            # The defect: the route timeout bounds each try, nothing bounds the request.
            common["retry_policy"]["per_try_timeout"] = common["timeout"]
            common["timeout"] = "0s"
    faulted = fault_config(fault, defects)
    plain = fault_config(None, defects)  # slow-proxy still delays routes the fault skips

    routes: list[dict[str, Any]] = []
    for name, match, action, extra in arms:
        if "route" in action:  # a redirect or a direct response has no upstream to retry
            action = {"route": {**common, **action["route"]}}
        prefixed = name == "split" and "split-header-prefix" in defects

        def arm_match(*ms: Any) -> dict[str, Any]:
            m = route_match(*ms, defects=defects)
            return headers_exact_as_prefix(m) if prefixed else m

        if fault is not None and not is_empty(fault.match):
            routes.append(_route(f"fault-{name}", arm_match(fault.match, match),
                                 action, extra, faulted))
            routes.append(_route(name, arm_match(match), action, extra, plain))
        else:
            routes.append(_route(name, arm_match(match), action, extra,
                                 faulted if fault is not None else plain))
    name = names.route_name(svc, port.port)
    return {"name": name, "validate_clusters": False, "virtual_hosts": [{
        "name": name, "domains": ["*"], "routes": routes}]}


def _route(name: str, match: dict[str, Any], action: dict[str, Any], extra: dict[str, Any],
           fault: dict[str, Any] | None) -> dict[str, Any]:
    r: dict[str, Any] = {"name": name, "match": match, **copy.deepcopy(action),
                         **copy.deepcopy(extra)}
    if fault is not None:
        r["typed_per_filter_config"] = {FAULT_FILTER: fault}
    return r
