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

from meshproof.intent import (AccessMode, AccessRule, Fault, HTTPMatch, Intent, MTLSMode,
                              OutlierDetection, Retry, Timeout, TrafficSplit)
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
    if m.path_regex:
        d["pathRegex"] = m.path_regex
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
    raise TypeError(f"no policy file form for {type(intent).__name__}")


def render(intents: Iterable[Intent]) -> str:
    """One multi-document YAML file stating every intent."""
    docs = [d for i in intents for d in render_intent(i)]
    return yaml.safe_dump_all(docs, sort_keys=False)
