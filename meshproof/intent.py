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

from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from meshproof.errors import ConfigError


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
class HTTPMatch:
    """HTTPRouteGroup-style request match (filled in by the policy issue).

    Empty fields match everything. Kept here now so TrafficSplit's shape
    does not change when matches arrive.
    """

    path_regex: str = ""
    methods: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # (name, exact value)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.path_regex:
            d["path_regex"] = self.path_regex
        if self.methods:
            d["methods"] = list(self.methods)
        if self.headers:
            d["headers"] = {k: v for k, v in self.headers}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HTTPMatch:
        return cls(
            path_regex=str(d.get("path_regex", "")),
            methods=tuple(str(m).upper() for m in d.get("methods", ())),
            headers=tuple(sorted((str(k), str(v)) for k, v in dict(d.get("headers", {})).items())),
        )


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


Intent = MTLSMode | TrafficSplit

_KINDS: dict[str, type] = {"MTLSMode": MTLSMode, "TrafficSplit": TrafficSplit}


def intent_from_dict(d: dict[str, Any]) -> Intent:
    """Any intent from its ``to_dict`` form, dispatched on ``kind``."""
    kind = d.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"unknown intent kind {kind!r}", f"known kinds: {sorted(_KINDS)}")
    return _KINDS[kind].from_dict(d)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Policy:
    """The full set of intents in force: what a control plane programs from."""

    mtls: tuple[MTLSMode, ...] = ()
    splits: tuple[TrafficSplit, ...] = ()

    def with_intent(self, intent: Intent) -> Policy:
        """A copy with ``intent`` added, replacing one with the same key."""
        if isinstance(intent, MTLSMode):
            return Policy(tuple(m for m in self.mtls if m.key != intent.key) + (intent,),
                          self.splits)
        return Policy(self.mtls,
                      tuple(s for s in self.splits if s.key != intent.key) + (intent,))

    def without(self, intent: Intent) -> Policy:
        return Policy(tuple(m for m in self.mtls if m.key != intent.key),
                      tuple(s for s in self.splits if s.key != intent.key))

    def to_dict(self) -> dict[str, Any]:
        return {"mtls": [m.to_dict() for m in self.mtls],
                "splits": [s.to_dict() for s in self.splits]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Policy:
        return cls(
            mtls=tuple(MTLSMode.from_dict({"kind": "MTLSMode", **m}) for m in d.get("mtls", ())),
            splits=tuple(TrafficSplit.from_dict({"kind": "TrafficSplit", **s})
                         for s in d.get("splits", ())),
        )


def _check_kind(d: dict[str, Any], kind: str) -> None:
    if d.get("kind", kind) != kind:
        raise ConfigError(f"expected kind {kind}, got {d.get('kind')!r}")
