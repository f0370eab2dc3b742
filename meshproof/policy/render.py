"""Intents -> policy files: the SMI and meshproof kinds a user would write for them.

The black-box adapter drives the reference mesh only through these files (as
``kubectl apply`` would), so rendering must be faithful: loading what
``render`` writes gives back the same behaviour (tests/policy/test_render.py
round-trips every kind through the loader). Route-less access rules become a
match-everything route group, because a TrafficTarget must name one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from meshproof.intent import (AccessMode, AccessRule, Fault, HeaderModifier, HTTPMatch,
                              HTTPRoute, Intent, MTLSMode, OutlierDetection, Retry, RouteRule,
                              Timeout, TrafficSplit)
from meshproof.policy.gamma import GATEWAY_API
from meshproof.policy.own import OWN_API

SMI_SPLIT = "split.smi-spec.io/v1alpha4"
SMI_SPECS = "specs.smi-spec.io/v1alpha4"
SMI_ACCESS = "access.smi-spec.io/v1alpha3"

Doc = dict[str, Any]


def _doc(api: str, kind: str, name: str, namespace: str, spec: dict[str, Any]) -> Doc:
    meta: dict[str, str] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}


def _slug(text: str) -> str:
    """A DNS-label-ish resource name from any key."""
    out = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return "-".join(p for p in out.split("-") if p)[:60] or "x"


def _match(m: HTTPMatch, name: str = "") -> dict[str, Any]:
    d: dict[str, Any] = {"name": name} if name else {}
    if m.has_path:
        d["pathRegex"] = m.path_as_regex()
    if m.methods:
        d["methods"] = list(m.methods)
    if m.headers:
        d["headers"] = dict(m.headers)
    return d


def _ms(ms: int) -> str:
    return f"{ms}ms"


def _service_kind(kind: str, ns_service: str, spec: dict[str, Any]) -> Doc:
    ns, svc = ns_service.split("/", 1)
    return _doc(OWN_API, kind, _slug(f"{svc}-{kind}"), ns, {"service": svc, **spec})


def _gw_matches(m: HTTPMatch) -> list[dict[str, Any]]:
    """Gateway API matches for one HTTPMatch (one per method: a Gateway match has one)."""
    d: dict[str, Any] = {}
    if m.path_exact:
        d["path"] = {"type": "Exact", "value": m.path_exact}
    elif m.path_prefix:
        d["path"] = {"type": "PathPrefix", "value": m.path_prefix}
    elif m.path_regex:
        d["path"] = {"type": "RegularExpression", "value": m.path_regex}
    if m.headers:
        d["headers"] = [{"name": k, "value": v} for k, v in m.headers]
    if m.query:
        d["queryParams"] = [{"name": k, "value": v} for k, v in m.query]
    return [{**d, "method": meth} for meth in m.methods] if m.methods else [d]


def _grpc_match(m: HTTPMatch) -> dict[str, Any]:
    """A GRPCRouteMatch: the method as written (never the path it became)."""
    d: dict[str, Any] = {}
    if m.grpc is not None:
        d["method"] = {k: v for k, v in m.grpc.to_dict().items() if v}
    if m.headers:
        d["headers"] = [{"name": k, "value": v} for k, v in m.headers]
    return d


def _header_filter(kind: str, mod: HeaderModifier) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if mod.set:
        body["set"] = [{"name": k, "value": v} for k, v in mod.set]
    if mod.add:
        body["add"] = [{"name": k, "value": v} for k, v in mod.add]
    if mod.remove:
        body["remove"] = list(mod.remove)
    return {"type": kind, kind[0].lower() + kind[1:]: body}


def _path_mod(full: str, prefix: str) -> dict[str, Any]:
    if full:
        return {"path": {"type": "ReplaceFullPath", "replaceFullPath": full}}
    if prefix:
        return {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": prefix}}
    return {}


def _gw_rule(rule: RouteRule, grpc: bool = False) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if rule.name:
        d["name"] = rule.name
    if rule.matches:
        d["matches"] = ([_grpc_match(m) for m in rule.matches] if grpc else
                        [x for m in rule.matches for x in _gw_matches(m)])
    filters = []
    if rule.request_headers:
        filters.append(_header_filter("RequestHeaderModifier", rule.request_headers))
    if rule.response_headers:
        filters.append(_header_filter("ResponseHeaderModifier", rule.response_headers))
    if rule.redirect is not None:
        r = rule.redirect
        body: dict[str, Any] = {k: v for k, v in (("scheme", r.scheme), ("hostname", r.hostname),
                                                  ("port", r.port)) if v}
        filters.append({"type": "RequestRedirect", "requestRedirect": {
            **body, **_path_mod(r.path_full, r.path_prefix), "statusCode": r.status}})
    if rule.rewrite is not None:
        w = rule.rewrite
        filters.append({"type": "URLRewrite", "urlRewrite": {
            **({"hostname": w.hostname} if w.hostname else {}),
            **_path_mod(w.path_full, w.path_prefix)}})
    if filters:
        d["filters"] = filters
    if rule.backends:
        refs = []
        for b in rule.backends:
            ref: dict[str, Any] = {"name": b.service, "weight": b.weight}
            if b.port:
                ref["port"] = b.port
            bf = [_header_filter(k, mod) for k, mod in (
                ("RequestHeaderModifier", b.request_headers),
                ("ResponseHeaderModifier", b.response_headers)) if mod]
            if bf:
                ref["filters"] = bf
            refs.append(ref)
        d["backendRefs"] = refs
    if rule.timeout_ms:
        d["timeouts"] = {"request": _ms(rule.timeout_ms)}
    return d


def _http_route(intent: HTTPRoute) -> Doc:
    ns, name = intent.name.split("/", 1)
    sns, svc = intent.service.split("/", 1)
    parent: dict[str, Any] = {"group": "", "kind": "Service", "name": svc}
    if sns != ns:
        parent["namespace"] = sns
    if intent.port:
        parent["port"] = intent.port
    return _doc(GATEWAY_API, "GRPCRoute" if intent.grpc else "HTTPRoute", name, ns, {
        "parentRefs": [parent], "rules": [_gw_rule(r, intent.grpc) for r in intent.rules]})


def _merge_routes(docs: list[Doc]) -> list[Doc]:
    """One HTTPRoute (or GRPCRoute) per name: the intents of one route (one per parent) share their
    rules, so they become one document with several parentRefs, as the user wrote it.
    Intents that share a name but not their rules keep apart under a suffixed name."""
    out: list[Doc] = []
    seen: dict[tuple[str, str, str], Doc] = {}
    for d in docs:
        if d["kind"] not in ("HTTPRoute", "GRPCRoute"):
            out.append(d)
            continue
        key = (d["kind"], d["metadata"]["namespace"], d["metadata"]["name"])
        prior = seen.get(key)
        if prior is not None and prior["spec"]["rules"] == d["spec"]["rules"]:
            prior["spec"]["parentRefs"] += d["spec"]["parentRefs"]
            continue
        if prior is not None:
            d["metadata"]["name"] = _slug(f"{key[2]}-{len(seen)}")
            key = (key[0], key[1], d["metadata"]["name"])
        seen[key] = d
        out.append(d)
    return out


def render_intent(intent: Intent) -> list[Doc]:
    """The documents that state ``intent`` (several when a kind needs a route group)."""
    if isinstance(intent, MTLSMode):
        spec: dict[str, Any] = {"mode": intent.mode.value}
        if intent.workload:
            spec["workload"] = intent.workload
        return [_doc(OWN_API, "MTLSMode", _slug(f"mtls-{intent.workload or 'all'}"),
                     intent.namespace, spec)]
    if isinstance(intent, AccessMode):
        return [_doc(OWN_API, "AccessMode", "access-mode", intent.namespace,
                     {"mode": intent.mode})]
    if isinstance(intent, TrafficSplit):
        name = _slug(f"{intent.name}-split")
        spec = {"service": intent.name,
                "backends": [{"service": b.service, "weight": b.weight}
                             for b in intent.backends]}
        docs = []
        if intent.match is not None:
            group = f"{name}-match"
            docs.append(_doc(SMI_SPECS, "HTTPRouteGroup", group, intent.namespace,
                             {"matches": [_match(intent.match, "m")]}))
            spec["matches"] = [{"kind": "HTTPRouteGroup", "name": group}]
        return [*docs, _doc(SMI_SPLIT, "TrafficSplit", name, intent.namespace, spec)]
    if isinstance(intent, AccessRule):
        ns, name = intent.name.split("/", 1)
        dns, dsa = intent.destination.split("/", 1)
        sources = [{"kind": "ServiceAccount", "name": s.split("/", 1)[1],
                    "namespace": s.split("/", 1)[0]} for s in intent.sources]
        target = {"destination": {"kind": "ServiceAccount", "name": dsa, "namespace": dns},
                  "sources": sources}
        if not intent.routes:
            # No route conditions: the whole connection (SMI says it with a TCPRoute), so
            # TCP ports are allowed too, not only every HTTP path.
            group = f"{name}-tcp"
            return [_doc(SMI_SPECS, "TCPRoute", group, ns, {}),
                    _doc(SMI_ACCESS, "TrafficTarget", name, ns, {
                        **target, "rules": [{"kind": "TCPRoute", "name": group}]})]
        group = f"{name}-routes"
        return [_doc(SMI_SPECS, "HTTPRouteGroup", group, ns,
                     {"matches": [_match(r, f"r{i}") for i, r in enumerate(intent.routes)]}),
                _doc(SMI_ACCESS, "TrafficTarget", name, ns, {
                    **target, "rules": [{"kind": "HTTPRouteGroup", "name": group}]})]
    if isinstance(intent, Retry):
        spec = {"retries": intent.retries, "retryOn": list(intent.retry_on)}
        if intent.per_try_timeout_ms:
            spec["perTryTimeout"] = _ms(intent.per_try_timeout_ms)
        return [_service_kind("Retry", intent.service, spec)]
    if isinstance(intent, Timeout):
        return [_service_kind("Timeout", intent.service, {"timeout": _ms(intent.timeout_ms)})]
    if isinstance(intent, Fault):
        spec = {}
        if intent.abort_status and intent.abort_percent:
            spec["abort"] = {"httpStatus": intent.abort_status,
                             "percentage": intent.abort_percent}
        if intent.delay_ms and intent.delay_percent:
            spec["delay"] = {"fixedDelay": _ms(intent.delay_ms),
                             "percentage": intent.delay_percent}
        if intent.match is not None:
            spec["match"] = _match(intent.match)
        return [_service_kind("FaultInjection", intent.service, spec)]
    if isinstance(intent, OutlierDetection):
        return [_service_kind("OutlierDetection", intent.service, {
            "consecutive5xx": intent.consecutive_5xx, "interval": _ms(intent.interval_ms),
            "baseEjectionTime": _ms(intent.base_ejection_ms),
            "maxEjectionPercent": intent.max_ejection_percent})]
    if isinstance(intent, HTTPRoute):
        return [_http_route(intent)]
    raise TypeError(f"no policy file form for {type(intent).__name__}")


def render(intents: Iterable[Intent]) -> str:
    """One multi-document YAML file stating every intent."""
    docs = _merge_routes([d for i in intents for d in render_intent(i)])
    return yaml.safe_dump_all(docs, sort_keys=False)
