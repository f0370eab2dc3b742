"""Policy YAML -> intents, all or nothing.

The load is one unit: every document of every file is read, every error is
collected with its location, and if there is any, nothing is returned (a
``PolicyError`` lists them all). So a caller that applies what this returns
never applies half a file, and the last good config stays in force.

HTTPRouteGroups are read before everything else, so a TrafficSplit may come
before the group it references, or in another file of the same load. Two
resources that would set the same intent (e.g. two splits of one service)
are an error: the intents hold one per key and the second would silently
replace the first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from meshproof.intent import Intent
from meshproof.policy import gamma, own, smi
from meshproof.policy.context import Context, Produced
from meshproof.policy.errors import FieldError, Location, PolicyError, Problem
from meshproof.policy.resource import Resource, locate, read_envelope
from meshproof.policy.yamldocs import read_documents
from meshproof.targets.model import Registry

Reader = Callable[[Resource, Context], Produced]


#: (apiVersion, kind) -> (reader, namespace: "required" | "optional")
KINDS: dict[tuple[str, str], tuple[Reader, str]] = {
    (smi.SPECS_API, "HTTPRouteGroup"): (smi.read_route_group, "required"),
    (smi.SPLIT_API, "TrafficSplit"): (smi.read_traffic_split, "required"),
    (smi.ACCESS_API, "TrafficTarget"): (smi.read_traffic_target, "required"),
    (gamma.GATEWAY_API, "HTTPRoute"): (gamma.read_http_route, "required"),
    (own.OWN_API, "AccessMode"): (own.read_access_mode, "optional"),
    (own.OWN_API, "MTLSMode"): (own.read_mtls_mode, "optional"),
    (own.OWN_API, "Retry"): (own.read_retry, "required"),
    (own.OWN_API, "Timeout"): (own.read_timeout, "required"),
    (own.OWN_API, "FaultInjection"): (own.read_fault, "required"),
    (own.OWN_API, "OutlierDetection"): (own.read_outlier_detection, "required"),
}


def _kind_entry(res: Resource) -> tuple[Reader, str]:
    entry = KINDS.get((res.api_version, res.kind))
    if entry is not None:
        return entry
    versions = sorted(a for a, k in KINDS if k == res.kind)
    if versions:
        raise FieldError("apiVersion", f"{res.kind} is not supported in {res.api_version}",
                         f"use apiVersion: {versions[0]}")
    kinds = sorted({k for _, k in KINDS})
    raise FieldError("kind", f"unknown kind {res.kind!r} ({res.api_version})",
                     f"supported kinds: {', '.join(kinds)}")


class _Load:
    """One load: the documents read so far, the problems found, the context."""

    def __init__(self, registry: Registry | None) -> None:
        self.ctx = Context(registry=registry)
        self.resources: list[tuple[Resource, Reader]] = []
        self.problems: list[Problem] = []

    def add_text(self, text: str, source: str) -> None:
        docs, problems = read_documents(text, source)
        self.problems += problems
        for index, doc in docs:
            loc = locate(doc, Location(source, index))
            try:
                res = read_envelope(doc, loc)
                reader, namespace = _kind_entry(res)
                if namespace == "required" and not res.namespace:
                    raise FieldError("metadata.namespace", "required field is missing",
                                     f"{res.kind} is namespaced: set metadata.namespace")
            except FieldError as exc:
                self.problems.append(Problem(loc, exc.field, exc.what, exc.hint))
                continue
            self.resources.append((res, reader))

    def intents(self) -> list[Intent]:
        groups = [(r, f) for r, f in self.resources if f is smi.read_route_group]
        others = [(r, f) for r, f in self.resources if f is not smi.read_route_group]
        produced: list[tuple[Intent, Resource, str]] = []
        for res, reader in groups + others:
            try:
                produced += [(i, res, at) for i, at in reader(res, self.ctx)]
            except FieldError as exc:
                self.problems.append(Problem(res.loc, exc.field, exc.what, exc.hint))
        self._check_unique(produced)
        if self.problems:
            raise PolicyError(self.problems)
        return [i for i, _, _ in produced]

    def _check_unique(self, produced: list[tuple[Intent, Resource, str]]) -> None:
        first: dict[str, Resource] = {}
        for intent, res, at in produced:
            prior = first.setdefault(intent.key, res)
            if prior is not res:
                self.problems.append(Problem(
                    res.loc, at, f"sets the same {intent.kind} as {prior.loc}",
                    "one resource per service (or scope) and kind: merge them or remove one"))


def load_text(text: str, source: str = "<string>", registry: Registry | None = None
              ) -> list[Intent]:
    """Intents of one YAML text (one or many documents); ``PolicyError`` if anything is wrong."""
    load = _Load(registry)
    load.add_text(text, source)
    return load.intents()


def load_files(paths: Iterable[str | Path], registry: Registry | None = None) -> list[Intent]:
    """Intents of several files loaded as one set (references may cross files).

    With ``registry``, every referenced service (and workload, namespace)
    must exist in it. Any error anywhere -> ``PolicyError`` and no intents.
    """
    load = _Load(registry)
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            load.problems.append(Problem(Location(str(path), 0), "", f"cannot read: {exc}",
                                         "check the path and that the file is UTF-8 text"))
            continue
        load.add_text(text, str(path))
    return load.intents()


def load_any(sources: Iterable[tuple[str, str]], registry: Registry | None = None
             ) -> list[Intent]:
    """Intents of ``(text, source name)`` pairs loaded as one set."""
    load = _Load(registry)
    for text, source in sources:
        load.add_text(text, source)
    return load.intents()


def supported_kinds() -> list[tuple[str, str]]:
    """``(apiVersion, kind)`` pairs the loader reads, for docs and error hints."""
    return sorted(KINDS)
