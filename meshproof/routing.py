"""The HTTPRoute intent: Gateway API's mesh routing, mesh-neutral.

One intent per (route, parent Service, parent port): an ordered list of
rules, each with its matches (OR), its backends (weighted, each with its own
header filters), and what it does to the request: header modifiers, a
redirect (answered by the caller's proxy, never forwarded) or a URL rewrite.
The precedence between rules of every route on the same Service is Gateway
API's (see :func:`precedence_key`), not the order written.

A route in another namespace than its Service is a *consumer route*: it
applies only to callers in the route's namespace, and for them it replaces
the Service's own (producer) routes (GAMMA, GEP-1294). A GRPCRoute becomes
this intent too (``grpc``): gRPC's service/method is the HTTP/2 path
``/pkg.Svc/Method``, and its matches keep the method as written for GRPCRoute's
own precedence (:func:`grpc_precedence_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from meshproof.errors import ConfigError
from meshproof.matching import HTTPMatch

#: Redirect status codes Gateway API allows (301/302 core, 303/307/308 extended).
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def _pairs(d: dict[str, Any] | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in (d or {}).items())


@dataclass(frozen=True)
class HeaderModifier:
    """Gateway API's Request/ResponseHeaderModifier: set (overwrite), add (append), remove."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("set", dict(self.set)), ("add", dict(self.add)),
                                  ("remove", list(self.remove))) if v}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> HeaderModifier | None:
        if not d:
            return None
        return cls(_pairs(d.get("set")), _pairs(d.get("add")),
                   tuple(str(x) for x in d.get("remove", ())))


@dataclass(frozen=True)
class Redirect:
    """RequestRedirect: the caller's proxy answers ``status`` with a new Location.

    Empty fields keep the request's own; ``port`` 0 = the scheme's well-known
    port when the scheme changes, else the request's. ``path_full`` replaces
    the whole path; ``path_prefix`` replaces the part the rule's PathPrefix
    matched (exactly one of them, or neither).
    """

    scheme: str = ""
    hostname: str = ""
    port: int = 0
    path_full: str = ""
    path_prefix: str = ""
    status: int = 302

    def __post_init__(self) -> None:
        if self.status not in REDIRECT_STATUSES:
            raise ConfigError(f"redirect status {self.status} is not one of {REDIRECT_STATUSES}")
        if self.path_full and self.path_prefix:
            raise ConfigError("a redirect replaces the full path or the prefix, not both")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Redirect | None:
        return None if d is None else cls(**{k: d[k] for k in d})


@dataclass(frozen=True)
class Rewrite:
    """URLRewrite: the request is forwarded with this hostname and/or path."""

    hostname: str = ""
    path_full: str = ""
    path_prefix: str = ""

    def __post_init__(self) -> None:
        if self.path_full and self.path_prefix:
            raise ConfigError("a rewrite replaces the full path or the prefix, not both")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Rewrite | None:
        return None if d is None else cls(**{k: d[k] for k in d})


@dataclass(frozen=True)
class RouteBackend:
    """A backendRef: a Service in the parent's namespace, weighted, with its own filters."""

    service: str
    weight: int = 1
    port: int = 0
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ConfigError(f"backend {self.service!r} has negative weight {self.weight}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"service": self.service, "weight": self.weight}
        if self.port:
            d["port"] = self.port
        for key in ("request_headers", "response_headers"):
            if getattr(self, key):
                d[key] = getattr(self, key).to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RouteBackend:
        return cls(str(d["service"]), int(d.get("weight", 1)), int(d.get("port", 0)),
                   HeaderModifier.from_dict(d.get("request_headers")),
                   HeaderModifier.from_dict(d.get("response_headers")))


@dataclass(frozen=True)
class RouteRule:
    """One rule: any of ``matches`` (none = every request) -> what it does."""

    name: str = ""
    matches: tuple[HTTPMatch, ...] = ()
    backends: tuple[RouteBackend, ...] = ()
    request_headers: HeaderModifier | None = None
    response_headers: HeaderModifier | None = None
    redirect: Redirect | None = None
    rewrite: Rewrite | None = None
    timeout_ms: int = 0

    def __post_init__(self) -> None:
        if self.redirect is not None and self.rewrite is not None:
            raise ConfigError(f"rule {self.name or '(unnamed)'} has both a redirect and a "
                              "rewrite", "a redirected request is never forwarded: keep one")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.name:
            d["name"] = self.name
        if self.matches:
            d["matches"] = [m.to_dict() for m in self.matches]
        if self.backends:
            d["backends"] = [b.to_dict() for b in self.backends]
        for key in ("request_headers", "response_headers", "redirect", "rewrite"):
            if getattr(self, key):
                d[key] = getattr(self, key).to_dict()
        if self.timeout_ms:
            d["timeout_ms"] = self.timeout_ms
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RouteRule:
        return cls(name=str(d.get("name", "")),
                   matches=tuple(HTTPMatch.from_dict(m) for m in d.get("matches", ())),
                   backends=tuple(RouteBackend.from_dict(b) for b in d.get("backends", ())),
                   request_headers=HeaderModifier.from_dict(d.get("request_headers")),
                   response_headers=HeaderModifier.from_dict(d.get("response_headers")),
                   redirect=Redirect.from_dict(d.get("redirect")),
                   rewrite=Rewrite.from_dict(d.get("rewrite")),
                   timeout_ms=int(d.get("timeout_ms", 0)))


@dataclass(frozen=True)
class HTTPRoute:
    """Gateway API HTTPRoute (or GRPCRoute) on one parent Service (and port)."""

    name: str  # namespace/name of the route resource
    service: str  # namespace/name of the parent Service
    rules: tuple[RouteRule, ...] = ()
    port: int = 0  # the parentRef's port; 0 = every port of the Service
    #: A GRPCRoute: its matches are gRPC methods, ordered by GRPCRoute's precedence.
    grpc: bool = False

    kind: ClassVar[str] = "HTTPRoute"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(
            r if isinstance(r, RouteRule) else RouteRule.from_dict(r) for r in self.rules))
        for what, ref in (("route", self.name), ("service", self.service)):
            if ref.count("/") != 1 or not all(ref.split("/")):
                raise ConfigError(f"HTTPRoute {what} {ref!r} is not 'namespace/name'")

    @property
    def namespace(self) -> str:
        return self.name.split("/")[0]

    @property
    def consumer(self) -> str:
        """The namespace whose callers alone it applies to ("" = a producer route: all)."""
        ns = self.namespace
        return "" if ns == self.service.split("/")[0] else ns

    @property
    def key(self) -> str:
        kind = "GRPCRoute" if self.grpc else self.kind
        return f"{kind}:{self.name}>{self.service}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "name": self.name, "service": self.service,
                             "rules": [r.to_dict() for r in self.rules]}
        if self.port:
            d["port"] = self.port
        if self.grpc:
            d["grpc"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HTTPRoute:
        if d.get("kind", cls.kind) != cls.kind:
            raise ConfigError(f"expected kind {cls.kind}, got {d.get('kind')!r}")
        try:
            return cls(name=str(d["name"]), service=str(d["service"]),
                       rules=tuple(RouteRule.from_dict(r) for r in d.get("rules", ())),
                       port=int(d.get("port", 0)), grpc=bool(d.get("grpc", False)))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"bad HTTPRoute {d!r}: {e}",
                              "shape: {name: ns/name, service: ns/name, rules: [...]}") from e


def precedence_key(m: HTTPMatch) -> tuple[int, int, int, int, int]:
    """Gateway API's order between matches of routes on one Service (smaller first).

    1. an Exact path; 2. a RegularExpression path (implementation-specific:
    here between Exact and PathPrefix, longer pattern first, as Envoy
    Gateway does); 3. the longest PathPrefix (no path = prefix ``/``);
    then 4. a method match; 5. the most header matches; 6. the most query
    parameter matches. Ties fall to the route (oldest, then namespace/name:
    meshproof has no creation time, so namespace/name) and then to the
    order of rules and matches, which the caller keeps by sorting stably.
    """
    if m.path_exact:
        kind, length = 0, len(m.path_exact)
    elif m.path_regex:
        kind, length = 1, len(m.path_regex)
    else:
        kind, length = 2, len(m.path_prefix) + 1  # "" is "/", one character
    return (kind, -length, 0 if m.methods else 1, -len(m.headers), -len(m.query))


def grpc_precedence_key(m: HTTPMatch) -> tuple[int, int, int]:
    """GRPCRoute's order between matches of routes on one Service (smaller first).

    The GRPCRouteRule spec: the most characters in a matching service, then in
    a matching method, then the most header matches (hostnames, first in the
    spec, are not supported on mesh routes). A match without a method (every
    method) counts 0 for both. A RegularExpression counts its pattern's
    characters: the spec does not tell the match types apart (Gateway API
    issue 2216 left it open). Ties fall to the route, then to the rule order,
    as for HTTPRoute.
    """
    g = m.grpc
    return (-len(g.service) if g else 0, -len(g.method) if g else 0, -len(m.headers))
