"""Mesh-neutral intents: what a test wants the mesh to do, not how.

A test states an intent; a mesh adapter turns it into its mesh's own
resources (reference mesh: control-plane policy JSON; Istio:
PeerAuthentication / VirtualService; SMI: TrafficSplit ...). Keeping the
vocabulary here, free of any mesh's shape, is what lets one test run
against every mesh.

Every intent is a frozen dataclass with ``to_dict`` / ``from_dict`` so it
can travel as JSON (control API, reports, evidence) and compare by value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from meshproof.errors import ConfigError
from meshproof.matching import HTTPMatch  # noqa: F401  (re-exported: intents use it)
from meshproof.routing import (HeaderModifier,  # noqa: F401  (re-exported)
                               HTTPRoute, Redirect, Rewrite, RouteBackend,
                               RouteRule)


class MTLSModeValue(str, Enum):
    """How a sidecar's inbound side treats callers."""

    #: Only mutual TLS with a mesh-issued client certificate.
    STRICT = "STRICT"
    #: Mutual TLS and plaintext are both accepted (migration mode).
    PERMISSIVE = "PERMISSIVE"


class Scope(str, Enum):
    MESH = "mesh"
    NAMESPACE = "namespace"
    WORKLOAD = "workload"


@dataclass(frozen=True)
class MTLSMode:
    """Inbound mTLS mode for the whole mesh, one namespace, or one workload.

    Precedence (Istio PeerAuthentication semantics): a workload-scoped mode
    beats a namespace-scoped one, which beats the mesh-wide one. With no
    intent at all a mesh uses its own default (the reference mesh:
    PERMISSIVE, like Istio).
    """

    mode: MTLSModeValue
    namespace: str = ""  # "" = mesh-wide
    workload: str = ""  # needs namespace; matches the workload (deployment) name

    kind: ClassVar[str] = "MTLSMode"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", MTLSModeValue(self.mode))
        if self.workload and not self.namespace:
            raise ConfigError(
                f"MTLSMode for workload {self.workload!r} has no namespace",
                "give namespace= too: a workload is named within its namespace",
            )

    @property
    def scope(self) -> Scope:
        if self.workload:
            return Scope.WORKLOAD
        if self.namespace:
            return Scope.NAMESPACE
        return Scope.MESH

    @property
    def key(self) -> str:
        """Identity of the intent: two MTLSModes with the same key replace each other."""
        return f"{self.kind}:{self.namespace}/{self.workload}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "mode": self.mode.value}
        if self.namespace:
            d["namespace"] = self.namespace
        if self.workload:
            d["workload"] = self.workload
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MTLSMode:
        _check_kind(d, cls.kind)
        try:
            return cls(
                mode=MTLSModeValue(str(d["mode"]).upper()),
                namespace=str(d.get("namespace", "")),
                workload=str(d.get("workload", "")),
            )
        except (KeyError, ValueError) as e:
            raise ConfigError(
                f"bad MTLSMode {d!r}: {e}", "mode is STRICT or PERMISSIVE"
            ) from e


def effective_mtls(modes: list[MTLSMode], namespace: str, workload: str,
                   default: MTLSModeValue = MTLSModeValue.PERMISSIVE) -> MTLSModeValue:
    """The mode that applies to one workload: workload over namespace over mesh."""
    best: tuple[int, MTLSModeValue] = (-1, default)
    for m in modes:
        if m.scope is Scope.WORKLOAD and (m.namespace, m.workload) == (namespace, workload):
            rank = 2
        elif m.scope is Scope.NAMESPACE and m.namespace == namespace:
            rank = 1
        elif m.scope is Scope.MESH:
            rank = 0
        else:
            continue
        if rank > best[0]:
            best = (rank, m.mode)
    return best[1]


@dataclass(frozen=True)
class Backend:
    """One weighted backend of a split: a service in the split's namespace."""

    service: str
    weight: int

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ConfigError(f"backend {self.service!r} has negative weight {self.weight}",
                              "weights are integers >= 0")


@dataclass(frozen=True)
class TrafficSplit:
    """SMI TrafficSplit: requests to ``service`` go to ``backends`` by weight.

    ``service`` is ``"namespace/name"`` (the root service callers address);
    backend names are services in the same namespace. Weights are relative
    (need not sum to 100) but at least one must be > 0. ``match`` limits the
    split to matching requests (policy issue; None = all requests).
    """

    service: str
    backends: tuple[Backend, ...]
    match: HTTPMatch | None = None

    kind: ClassVar[str] = "TrafficSplit"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "backends",
            tuple(b if isinstance(b, Backend) else Backend(str(b[0]), int(b[1]))
                  for b in self.backends),
        )
        if self.service.count("/") != 1 or not all(self.service.split("/")):
            raise ConfigError(f"TrafficSplit service {self.service!r} is not 'namespace/name'",
                              "write the root service as e.g. 'bookinfo/reviews'")
        if not self.backends or sum(b.weight for b in self.backends) <= 0:
            raise ConfigError(f"TrafficSplit {self.service} has no backend with weight > 0",
                              "give at least one backend a positive weight")
        names = [b.service for b in self.backends]
        if len(set(names)) != len(names):
            raise ConfigError(f"TrafficSplit {self.service} lists a backend twice: {names}",
                              "merge the weights of duplicate backends")

    @property
    def namespace(self) -> str:
        return self.service.split("/")[0]

    @property
    def name(self) -> str:
        return self.service.split("/")[1]

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.service}"

    def weights(self) -> dict[str, int]:
        return {b.service: b.weight for b in self.backends}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": self.kind,
            "service": self.service,
            "backends": [{"service": b.service, "weight": b.weight} for b in self.backends],
        }
        if self.match is not None:
            d["match"] = self.match.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrafficSplit:
        _check_kind(d, cls.kind)
        try:
            backends = tuple(Backend(str(b["service"]), int(b["weight"])) for b in d["backends"])
            match = HTTPMatch.from_dict(d["match"]) if d.get("match") is not None else None
            return cls(service=str(d["service"]), backends=backends, match=match)
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"bad TrafficSplit {d!r}: {e}",
                              "shape: {service: ns/name, backends: [{service, weight}]}") from e


def _service_ref(kind: str, service: str) -> None:
    if service.count("/") != 1 or not all(service.split("/")):
        raise ConfigError(f"{kind} service {service!r} is not 'namespace/name'",
                          "write the service as e.g. 'bookinfo/reviews'")


def _identity_ref(kind: str, ident: str) -> None:
    if ident.count("/") != 1 or not all(ident.split("/")):
        raise ConfigError(f"{kind} identity {ident!r} is not 'namespace/serviceaccount'",
                          "write an identity as e.g. 'team-a/client'")


def _fields_from(cls: type, d: dict[str, Any], **conv: Any) -> Any:
    """Build ``cls`` from ``d``: unknown fields are an error, as in the loader."""
    known = {f for f in cls.__dataclass_fields__}  # type: ignore[attr-defined]
    extra = set(d) - known - {"kind"}
    if extra:
        raise ConfigError(f"{cls.__name__}: unknown field(s) {sorted(extra)}",
                          f"fields: {sorted(known)}")
    try:
        return cls(**{k: conv.get(k, lambda v: v)(v) for k, v in d.items() if k != "kind"})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad {cls.__name__} {d!r}: {e}") from e


@dataclass(frozen=True)
class AccessMode:
    """How access is decided: ``permissive`` (all allowed) or ``smi`` (deny by
    default, AccessRules allow). Mesh-wide, or for one namespace (the
    destination's), namespace over mesh."""

    mode: str
    namespace: str = ""

    kind: ClassVar[str] = "AccessMode"

    def __post_init__(self) -> None:
        if self.mode not in ("permissive", "smi"):
            raise ConfigError(f"AccessMode mode {self.mode!r} is not permissive or smi")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.namespace}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode, "namespace": self.namespace}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccessMode:
        return _fields_from(cls, d)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class AccessRule:
    """SMI TrafficTarget: ``sources`` may call workloads running as
    ``destination``, for requests matching one of ``routes`` (none = any).

    Identities are ``namespace/serviceaccount``. Only enforced where the
    destination's AccessMode is ``smi``.
    """

    name: str  # namespace/name of the rule (a TrafficTarget's)
    destination: str
    sources: tuple[str, ...]
    routes: tuple[HTTPMatch, ...] = ()

    kind: ClassVar[str] = "AccessRule"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "routes", tuple(
            r if isinstance(r, HTTPMatch) else HTTPMatch.from_dict(r) for r in self.routes))
        _identity_ref(self.kind, self.destination)
        if not self.sources:
            raise ConfigError(f"AccessRule {self.name}: no sources", "list at least one source")
        for src in self.sources:
            _identity_ref(self.kind, src)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "destination": self.destination,
                "sources": list(self.sources), "routes": [r.to_dict() for r in self.routes]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccessRule:
        return _fields_from(cls, d, sources=tuple,  # type: ignore[no-any-return]
                            routes=lambda rs: tuple(HTTPMatch.from_dict(r) for r in rs))


@dataclass(frozen=True)
class Retry:
    """Callers of ``service`` retry: ``retries: N`` means up to N+1 upstream
    attempts; each attempt bounded by ``per_try_timeout_ms`` (0 = none);
    ``retry_on`` in Envoy/Istio vocabulary (5xx, gateway-error, reset,
    connect-failure, retriable-4xx, ...)."""

    service: str
    retries: int
    per_try_timeout_ms: int = 0
    retry_on: tuple[str, ...] = ("5xx",)

    kind: ClassVar[str] = "Retry"

    def __post_init__(self) -> None:
        object.__setattr__(self, "retry_on", tuple(self.retry_on))
        _service_ref(self.kind, self.service)
        if not 0 <= self.retries <= 10:
            raise ConfigError(f"Retry {self.service}: retries must be 0..10, got {self.retries}")
        if self.per_try_timeout_ms < 0:
            raise ConfigError(f"Retry {self.service}: per_try_timeout_ms must be >= 0")
        if not self.retry_on:
            raise ConfigError(f"Retry {self.service}: retry_on is empty")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.service}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "service": self.service, "retries": self.retries,
                "per_try_timeout_ms": self.per_try_timeout_ms, "retry_on": list(self.retry_on)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Retry:
        return _fields_from(cls, d, retry_on=tuple)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Timeout:
    """Callers of ``service`` give up after ``timeout_ms`` (HTTP 504)."""

    service: str
    timeout_ms: int

    kind: ClassVar[str] = "Timeout"

    def __post_init__(self) -> None:
        _service_ref(self.kind, self.service)
        if self.timeout_ms <= 0:
            raise ConfigError(f"Timeout {self.service}: timeout_ms must be > 0")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.service}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "service": self.service, "timeout_ms": self.timeout_ms}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timeout:
        return _fields_from(cls, d)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Fault:
    """Injected by callers' sidecars for requests to ``service``: abort with
    ``abort_status`` for ``abort_percent`` % of requests, and/or delay by
    ``delay_ms`` for ``delay_percent`` %. Optional ``match``."""

    service: str
    abort_status: int = 0
    abort_percent: float = 0.0
    delay_ms: int = 0
    delay_percent: float = 0.0
    match: HTTPMatch | None = None

    kind: ClassVar[str] = "Fault"

    def __post_init__(self) -> None:
        _service_ref(self.kind, self.service)
        if isinstance(self.match, dict):
            object.__setattr__(self, "match", HTTPMatch.from_dict(self.match))
        for name in ("abort_percent", "delay_percent"):
            if not 0.0 <= float(getattr(self, name)) <= 100.0:
                raise ConfigError(f"Fault {self.service}: {name} must be 0..100")
        if self.abort_status and not 200 <= self.abort_status <= 599:
            raise ConfigError(f"Fault {self.service}: abort_status must be an HTTP status")
        if not (self.abort_status and self.abort_percent) and not (
                self.delay_ms and self.delay_percent):
            raise ConfigError(f"Fault {self.service}: neither an abort nor a delay is set",
                              "set abort_status + abort_percent and/or delay_ms + delay_percent")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.service}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "service": self.service,
                             "abort_status": self.abort_status,
                             "abort_percent": self.abort_percent, "delay_ms": self.delay_ms,
                             "delay_percent": self.delay_percent}
        if self.match is not None:
            d["match"] = self.match.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fault:
        return _fields_from(cls, d, match=lambda m: None if m is None  # type: ignore[no-any-return]
                            else HTTPMatch.from_dict(m))


@dataclass(frozen=True)
class OutlierDetection:
    """Callers eject an endpoint of ``service`` after ``consecutive_5xx``
    errors, for ``base_ejection_ms`` (growing with each ejection)."""

    service: str
    consecutive_5xx: int = 5
    interval_ms: int = 1000
    base_ejection_ms: int = 30000
    max_ejection_percent: int = 100

    kind: ClassVar[str] = "OutlierDetection"

    def __post_init__(self) -> None:
        _service_ref(self.kind, self.service)
        if self.consecutive_5xx < 1 or self.interval_ms < 1 or self.base_ejection_ms < 1:
            raise ConfigError(f"OutlierDetection {self.service}: counts and times must be >= 1")
        if not 0 <= self.max_ejection_percent <= 100:
            raise ConfigError(f"OutlierDetection {self.service}: max_ejection_percent 0..100")

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.service}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "service": self.service,
                "consecutive_5xx": self.consecutive_5xx, "interval_ms": self.interval_ms,
                "base_ejection_ms": self.base_ejection_ms,
                "max_ejection_percent": self.max_ejection_percent}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutlierDetection:
        return _fields_from(cls, d)  # type: ignore[no-any-return]


Intent = (MTLSMode | TrafficSplit | AccessMode | AccessRule | Retry | Timeout | Fault
          | OutlierDetection | HTTPRoute)

#: kind -> (class, the Policy field that holds intents of that kind)
_KINDS: dict[str, tuple[type, str]] = {
    "MTLSMode": (MTLSMode, "mtls"), "TrafficSplit": (TrafficSplit, "splits"),
    "AccessMode": (AccessMode, "access_modes"), "AccessRule": (AccessRule, "access_rules"),
    "Retry": (Retry, "retries"), "Timeout": (Timeout, "timeouts"), "Fault": (Fault, "faults"),
    "OutlierDetection": (OutlierDetection, "outliers"), "HTTPRoute": (HTTPRoute, "routes"),
}


def intent_from_dict(d: dict[str, Any]) -> Intent:
    """Any intent from its ``to_dict`` form, dispatched on ``kind``."""
    kind = d.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"unknown intent kind {kind!r}", f"known kinds: {sorted(_KINDS)}")
    return _KINDS[kind][0].from_dict(d)  # type: ignore[no-any-return,attr-defined]


@dataclass(frozen=True)
class Policy:
    """The full set of intents in force: what a control plane programs from.

    One tuple per kind; within a kind an intent replaces another with the
    same ``key`` (e.g. one Retry per service).
    """

    mtls: tuple[MTLSMode, ...] = ()
    splits: tuple[TrafficSplit, ...] = ()
    access_modes: tuple[AccessMode, ...] = ()
    access_rules: tuple[AccessRule, ...] = ()
    retries: tuple[Retry, ...] = ()
    timeouts: tuple[Timeout, ...] = ()
    faults: tuple[Fault, ...] = ()
    outliers: tuple[OutlierDetection, ...] = ()
    routes: tuple[HTTPRoute, ...] = ()

    def _replace(self, field: str, items: tuple[Any, ...]) -> Policy:
        return dataclasses.replace(self, **{field: items})

    def with_intent(self, intent: Intent) -> Policy:
        """A copy with ``intent`` added, replacing one with the same key."""
        field = _KINDS[intent.kind][1]
        kept = tuple(i for i in getattr(self, field) if i.key != intent.key)
        return self._replace(field, kept + (intent,))

    def without(self, intent: Intent) -> Policy:
        field = _KINDS[intent.kind][1]
        return self._replace(field, tuple(i for i in getattr(self, field)
                                          if i.key != intent.key))

    def intents(self) -> list[Intent]:
        return [i for _, field in _KINDS.values() for i in getattr(self, field)]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for _, field in _KINDS.values():
            items = getattr(self, field)
            if items or field in ("mtls", "splits"):
                out[field] = [{k: v for k, v in i.to_dict().items() if k != "kind"}
                              for i in items]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Policy:
        fields = {field: kind for kind, (_, field) in _KINDS.items()}
        unknown = set(d) - set(fields)
        if unknown:
            raise ConfigError(f"policy: unknown section(s) {sorted(unknown)}",
                              f"sections: {sorted(fields)}")
        return cls(**{field: tuple(intent_from_dict({"kind": fields[field], **x})
                                   for x in d.get(field, ()))
                      for field in fields})


def _check_kind(d: dict[str, Any], kind: str) -> None:
    if d.get("kind", kind) != kind:
        raise ConfigError(f"expected kind {kind}, got {d.get('kind')!r}")
