"""HTTPMatch: one request match, the vocabulary every matching intent shares.

A split's match, an access rule's route and a Gateway API HTTPRoute match
all say the same things: a path (a full-path RE2 regex, an exact path, or
a Gateway API path prefix), methods, exact headers and exact query
parameters. The literal path forms exist so a mesh can use its own path
matchers (Envoy's ``path`` and ``path_separated_prefix``) instead of a regex
per path, which also keeps long paths clear of RE2's program-size limit.

Empty fields match everything. Every field ANDs with the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshproof.errors import ConfigError


@dataclass(frozen=True)
class GRPCMethod:
    """A GRPCRoute method match as written (its path form is in the HTTPMatch that holds
    it): kept because GRPCRoute's precedence counts the characters of the service, then
    of the method, which the path alone no longer tells apart (an Exact service-only
    match is a prefix, an Exact method-only one a regex)."""

    type: str = "Exact"  # or "RegularExpression"
    service: str = ""
    method: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "service": self.service, "method": self.method}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GRPCMethod:
        return cls(str(d.get("type", "Exact")), str(d.get("service", "")),
                   str(d.get("method", "")))


@dataclass(frozen=True)
class HTTPMatch:
    """A request match. At most one of the three path forms is set.

    ``path_prefix`` has Gateway API's PathPrefix meaning: whole path segments
    (``/v2`` matches ``/v2`` and ``/v2/x``, not ``/v2x``), a trailing slash
    ignored; ``"/"`` is never stored (it matches every path: leave it empty).
    """

    path_regex: str = ""
    methods: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, exact value)
    path_exact: str = ""
    path_prefix: str = ""
    query: tuple[tuple[str, str], ...] = ()  # (name, exact value); names are case-sensitive
    #: A GRPCRoute match's method as written (the path above is what matches).
    grpc: GRPCMethod | None = None

    def __post_init__(self) -> None:
        forms = [f for f in (self.path_regex, self.path_exact, self.path_prefix) if f]
        if len(forms) > 1:
            raise ConfigError(f"a match has {len(forms)} path forms: {forms}",
                              "give one of path_regex, path_exact, path_prefix")
        if self.path_prefix:
            object.__setattr__(self, "path_prefix", self.path_prefix.rstrip("/") or "")

    @property
    def empty(self) -> bool:
        return not (self.path_regex or self.path_exact or self.path_prefix or self.methods
                    or self.headers or self.query)

    @property
    def has_path(self) -> bool:
        return bool(self.path_regex or self.path_exact or self.path_prefix)

    def path_as_regex(self) -> str:
        """The path as a full-path RE2 regex, whichever form it was written in
        (for places with regexes only: SMI route groups, a second path in one match)."""
        from meshproof.policy.regex import escape

        if self.path_exact:
            return escape(self.path_exact)
        if self.path_prefix:
            return f"{escape(self.path_prefix)}(?:/.*)?"
        return self.path_regex

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in ("path_regex", "path_exact", "path_prefix"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.methods:
            d["methods"] = list(self.methods)
        if self.headers:
            d["headers"] = {k: v for k, v in self.headers}
        if self.query:
            d["query"] = {k: v for k, v in self.query}
        if self.grpc is not None:
            d["grpc"] = self.grpc.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HTTPMatch:
        return cls(
            path_regex=str(d.get("path_regex", "")),
            path_exact=str(d.get("path_exact", "")),
            path_prefix=str(d.get("path_prefix", "")),
            methods=tuple(str(m).upper() for m in d.get("methods", ())),
            headers=tuple(sorted((str(k), str(v)) for k, v in dict(d.get("headers", {})).items())),
            query=tuple(sorted((str(k), str(v)) for k, v in dict(d.get("query", {})).items())),
            grpc=GRPCMethod.from_dict(d["grpc"]) if d.get("grpc") else None,
        )
