"""meshproof's own kinds (``policy.meshproof.dev/v1alpha1``): one per intent.

They cover what SMI and GAMMA leave out. Scope comes from
``metadata.namespace``: AccessMode and MTLSMode without one are mesh-wide;
the service-scoped kinds (Retry, Timeout, FaultInjection, OutlierDetection)
name ``spec.service`` in the resource's namespace. Durations are strings
("300ms", "2s"); percentages are numbers 0..100.
"""

from __future__ import annotations

from meshproof.intent import (AccessMode, Fault, MTLSMode, MTLSModeValue, OutlierDetection,
                              Retry, Timeout)
from meshproof.policy.context import Context, Produced, build
from meshproof.policy.duration import parse_duration_ms
from meshproof.policy.errors import FieldError
from meshproof.policy.fields import Obj
from meshproof.policy.limits import UINT32_MAX
from meshproof.policy.preview import text as quoted
from meshproof.policy.matches import SMI_MATCH_FIELDS, smi_match
from meshproof.policy.resource import Resource

OWN_API = "policy.meshproof.dev/v1alpha1"
#: Envoy's retry_on conditions that need no further settings.
RETRY_ON = ("5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
            "retriable-4xx", "refused-stream")


def read_access_mode(res: Resource, ctx: Context) -> Produced:
    spec = Obj(res.spec, "spec", {"mode"}, {"mode"})
    mode = spec.text("mode", choices=("permissive", "smi"))
    if res.namespace:
        ctx.namespace(res.namespace, "metadata.namespace")
    return [(build("spec.mode", AccessMode, mode, res.namespace), "metadata.namespace")]


def read_mtls_mode(res: Resource, ctx: Context) -> Produced:
    spec = Obj(res.spec, "spec", {"mode", "workload"}, {"mode"})
    mode = MTLSModeValue(spec.text("mode", choices=("STRICT", "PERMISSIVE")))
    workload = ""
    if res.namespace:
        ctx.namespace(res.namespace, "metadata.namespace")
    if spec.has("workload"):
        if not res.namespace:
            raise FieldError(spec.at("workload"), "a workload-scoped MTLSMode has no namespace",
                             "set metadata.namespace: a workload is named within its namespace")
        workload = ctx.workload(res.namespace, spec.name("workload"), spec.at("workload"))
    intent = build("spec", MTLSMode, mode, res.namespace, workload)
    return [(intent, "spec.workload" if workload else "metadata.namespace")]


def _service(res: Resource, spec: Obj, ctx: Context) -> str:
    """``namespace/service``; the loader has made sure the resource has a namespace."""
    return ctx.service(res.namespace, spec.name("service"), spec.at("service"))


def read_retry(res: Resource, ctx: Context) -> Produced:
    """``retries: N`` = up to N+1 attempts (the first try plus N retries)."""
    spec = Obj(res.spec, "spec", {"service", "retries", "perTryTimeout", "retryOn"},
               {"service", "retries"})
    service = _service(res, spec, ctx)
    retries = spec.integer("retries", lo=0, hi=10)
    per_try = (parse_duration_ms(spec.raw("perTryTimeout"), spec.at("perTryTimeout"))
               if spec.has("perTryTimeout") else 0)
    retry_on = spec.strs("retryOn", nonempty=True) if spec.has("retryOn") else ["5xx"]
    for i, cond in enumerate(retry_on):
        if cond not in RETRY_ON:
            raise FieldError(f"{spec.at('retryOn')}[{i}]", f"{quoted(cond)} is not a retry condition",
                             f"one of {', '.join(RETRY_ON)}")
    intent = build("spec", Retry, service, retries, per_try, tuple(retry_on))
    return [(intent, "spec.service")]


def read_timeout(res: Resource, ctx: Context) -> Produced:
    spec = Obj(res.spec, "spec", {"service", "timeout"}, {"service", "timeout"})
    service = _service(res, spec, ctx)
    ms = parse_duration_ms(spec.raw("timeout"), spec.at("timeout"))
    return [(build(spec.at("timeout"), Timeout, service, ms), "spec.service")]


def read_fault(res: Resource, ctx: Context) -> Produced:
    """``abort`` and/or ``delay``, each with a ``percentage`` (default 100)."""
    spec = Obj(res.spec, "spec", {"service", "abort", "delay", "match"}, {"service"})
    service = _service(res, spec, ctx)
    if not (spec.has("abort") or spec.has("delay")):
        raise FieldError("spec", "neither abort nor delay is set",
                         "set spec.abort {httpStatus, percentage} and/or "
                         "spec.delay {fixedDelay, percentage}")
    kw: dict[str, object] = {}
    if spec.has("abort"):
        a = spec.child("abort", {"httpStatus", "percentage"}, {"httpStatus"})
        kw["abort_status"] = a.integer("httpStatus", lo=200, hi=599)
        kw["abort_percent"] = a.number("percentage", 100.0, lo=0, hi=100)
    if spec.has("delay"):
        d = spec.child("delay", {"fixedDelay", "percentage"}, {"fixedDelay"})
        kw["delay_ms"] = parse_duration_ms(d.raw("fixedDelay"), d.at("fixedDelay"))
        kw["delay_percent"] = d.number("percentage", 100.0, lo=0, hi=100)
    if spec.has("match"):
        kw["match"] = smi_match(spec.child("match", SMI_MATCH_FIELDS - {"name"}))
    return [(build("spec", Fault, service, **kw), "spec.service")]


def read_outlier_detection(res: Resource, ctx: Context) -> Produced:
    spec = Obj(res.spec, "spec", {"service", "consecutive5xx", "interval", "baseEjectionTime",
                                  "maxEjectionPercent"}, {"service"})
    service = _service(res, spec, ctx)
    defaults = OutlierDetection(service)
    kw = {"consecutive_5xx": spec.integer("consecutive5xx", defaults.consecutive_5xx, lo=1,
                                          hi=UINT32_MAX),
          "max_ejection_percent": spec.integer("maxEjectionPercent",
                                               defaults.max_ejection_percent, lo=0, hi=100)}
    for key, attr in (("interval", "interval_ms"), ("baseEjectionTime", "base_ejection_ms")):
        if spec.has(key):
            kw[attr] = parse_duration_ms(spec.raw(key), spec.at(key))
            if not kw[attr]:
                raise FieldError(spec.at(key), "must be longer than 0", "e.g. 1s")
    return [(build("spec", OutlierDetection, service, **kw), "spec.service")]
