"""Policy YAML -> intents, all or nothing.

The load is one unit: every document of every file is read, every error is
collected with its location, and if there is any, nothing is returned (a
``PolicyError`` lists them all). So a caller that applies what this returns
never applies half a file, and the last good config stays in force.

HTTPRouteGroups are read before everything else, so a TrafficSplit may come
before the group it references, or in another file of the same load. Two
resources that would set the same intent (e.g. two splits of one service)
are an error: the intents hold one per key and the second would silently
replace the first. So are two resources of one kind with one name (kubectl
would keep the last), and a file without any resource (kubectl refuses it).

Work is bounded (meshproof/policy/limits.py): files are read up to a size,
a load takes up to ``MAX_DOCUMENTS`` documents, and a load with many
problems keeps the first ``MAX_PROBLEMS_KEPT`` and counts the rest.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from meshproof.intent import Intent
from meshproof.policy import gamma, own, smi
from meshproof.policy.context import Context, Produced
from meshproof.policy.errors import FieldError, Location, PolicyError, Problem
from meshproof.policy.limits import MAX_DOCUMENTS, MAX_PROBLEMS_COUNTED, MAX_PROBLEMS_KEPT
from meshproof.policy.preview import text as quoted
from meshproof.policy.resource import Resource, locate, read_envelope
from meshproof.policy.sources import STDIN, STDIN_NAME, read_source, read_stream
from meshproof.policy.yamldocs import iter_documents
from meshproof.targets.model import Registry

Reader = Callable[[Resource, Context], Produced]


#: (apiVersion, kind) -> (reader, namespace: "required" | "optional")
KINDS: dict[tuple[str, str], tuple[Reader, str]] = {
    (smi.SPECS_API, "HTTPRouteGroup"): (smi.read_route_group, "required"),
    (smi.SPECS_API, "TCPRoute"): (smi.read_tcp_route, "required"),
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


#: Kinds of the APIs meshproof reads that it does not map: named as unsupported,
#: not unknown. API group -> kinds.
UNSUPPORTED: dict[str, frozenset[str]] = {
    "specs.smi-spec.io": frozenset({"UDPRoute"}),
    "split.smi-spec.io": frozenset(),
    "access.smi-spec.io": frozenset({"IdentityBinding"}),
    "metrics.smi-spec.io": frozenset({"TrafficMetrics"}),
    "gateway.networking.k8s.io": frozenset({
        "GRPCRoute", "TCPRoute", "TLSRoute", "UDPRoute", "Gateway", "GatewayClass",
        "ReferenceGrant", "BackendTLSPolicy", "BackendLBPolicy", "ListenerSet"}),
}


def _supported() -> str:
    return ", ".join(f"{k} ({a})" for a, k in sorted(KINDS, key=lambda x: x[1]))


def _kind_entry(res: Resource) -> tuple[Reader, str]:
    entry = KINDS.get((res.api_version, res.kind))
    if entry is not None:
        return entry
    versions = sorted(a for a, k in KINDS if k == res.kind)
    if versions:
        raise FieldError("apiVersion", f"{res.kind} is not supported in "
                         f"{quoted(res.api_version)}", f"use apiVersion: {versions[0]}")
    group = res.api_version.split("/")[0]
    if res.kind in UNSUPPORTED.get(group, ()):
        raise FieldError("kind", f"{res.kind} ({quoted(res.api_version)}) is not supported "
                         "by meshproof", f"supported kinds: {_supported()}")
    raise FieldError("kind", f"unknown kind {quoted(res.kind)} ({quoted(res.api_version)})",
                     f"supported kinds: {_supported()}")


@contextmanager
def _no_gc() -> Iterator[None]:
    """A load allocates many small objects and no cycles: Python's cycle
    collector would rescan them again and again (a third of the time at
    100,000 documents)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class _Load:
    """One load: the documents read so far, the problems found, the context."""

    def __init__(self, registry: Registry | None) -> None:
        self.ctx = Context(registry=registry)
        self.resources: list[tuple[Resource, Reader]] = []
        self.problems: list[Problem] = []
        self.total = 0  # problems found, kept or not
        self.documents = 0
        self.names: dict[tuple[str, str, str, str], Location] = {}

    def problem(self, p: Problem) -> None:
        self.total += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(p)

    def add_text(self, data: str | bytes, source: str) -> None:
        """Every document of one file (or text); a file with none is an error."""
        seen = False
        for item in iter_documents(data, source):
            seen = True
            if isinstance(item, Problem):
                self.problem(item)
                continue
            if self.total >= MAX_PROBLEMS_COUNTED:
                self.problem(Problem(Location(source, item[0]), "", f"reading stopped after "
                                     f"{MAX_PROBLEMS_COUNTED} problems", "fix the first ones"))
                return
            index, doc = item
            self.documents += 1
            if self.documents > MAX_DOCUMENTS:
                self.problem(Problem(Location(source, index), "", f"the load has more than "
                                     f"{MAX_DOCUMENTS} documents; reading stopped here",
                                     "split the policy into several loads"))
                return
            self._add_document(doc, Location(source, index))
        if not seen:
            self.problem(Problem(Location(source, 0), "", "contains no policy documents "
                                 "(it is empty, or only comments)", "name a file that holds "
                                 "resources (kubectl refuses an empty one too)"))

    def add_problem_or_text(self, source: str, content: str | bytes | Problem) -> None:
        if isinstance(content, Problem):
            self.problem(content)
        else:
            self.add_text(content, source)

    def _add_document(self, doc: Any, at: Location) -> None:
        loc = locate(doc, at)
        try:
            res = read_envelope(doc, loc)
            reader, namespace = _kind_entry(res)
            if namespace == "required" and not res.namespace:
                raise FieldError("metadata.namespace", "required field is missing",
                                 f"{res.kind} is namespaced: set metadata.namespace")
            key = (res.api_version.split("/")[0], res.kind, res.namespace, res.name)
            prior = self.names.setdefault(key, loc)
            if prior is not loc:
                raise FieldError("metadata.name", f"{res.kind} {res.ref.lstrip('/')} is "
                                 f"defined twice (first in {prior.file}: document "
                                 f"{prior.document})", "give each resource its own name "
                                 "(kubectl would keep only the last one)")
        except FieldError as exc:
            self.problem(Problem(loc, exc.field, exc.what, exc.hint))
            return
        self.resources.append((res, reader))

    def intents(self) -> list[Intent]:
        # Route kinds first: what references them may come earlier in the file.
        firsts = (smi.read_route_group, smi.read_tcp_route)
        groups = [(r, f) for r, f in self.resources if f in firsts]
        others = [(r, f) for r, f in self.resources if f not in firsts]
        produced: list[tuple[Intent, Resource, str]] = []
        for res, reader in groups + others:
            try:
                produced += [(i, res, at) for i, at in reader(res, self.ctx)]
            except FieldError as exc:
                self.problem(Problem(res.loc, exc.field, exc.what, exc.hint))
        self._check_unique(produced)
        if self.problems:
            raise PolicyError(self.problems, self.total)
        return [i for i, _, _ in produced]

    def _check_unique(self, produced: list[tuple[Intent, Resource, str]]) -> None:
        first: dict[str, Resource] = {}
        for intent, res, at in produced:
            prior = first.setdefault(intent.key, res)
            if prior is not res:
                self.problem(Problem(
                    res.loc, at, f"sets the same {intent.kind} as {prior.loc}",
                    "one resource per service (or scope) and kind: merge them or remove one"))


def load_text(text: str | bytes, source: str = "<string>", registry: Registry | None = None
              ) -> list[Intent]:
    """Intents of one YAML text (one or many documents); ``PolicyError`` if anything is wrong."""
    return load_any([(text, source)], registry)


def load_stream(stream: IO[Any], source: str = STDIN_NAME, registry: Registry | None = None
                ) -> list[Intent]:
    """Intents of a stream (e.g. ``sys.stdin.buffer``), read up to the size limit."""
    load = _Load(registry)
    with _no_gc():
        load.add_problem_or_text(source, read_stream(stream, source))
        return load.intents()


def load_files(paths: Iterable[str | Path], registry: Registry | None = None) -> list[Intent]:
    """Intents of several files loaded as one set (references may cross files).

    ``-`` is standard input (once). With ``registry``, every referenced service
    (and workload, namespace) must exist in it. Any error anywhere ->
    ``PolicyError`` and no intents.
    """
    load = _Load(registry)
    stdin_used = False
    with _no_gc():
        for path in paths:
            if str(path) == STDIN:
                if stdin_used:
                    load.problem(Problem(Location(STDIN_NAME, 0), "", "standard input (-) is "
                                         "named twice", "give -f - once"))
                    continue
                stdin_used = True
            load.add_problem_or_text(*read_source(path))
        return load.intents()


def load_any(sources: Iterable[tuple[str | bytes, str]], registry: Registry | None = None
             ) -> list[Intent]:
    """Intents of ``(text, source name)`` pairs loaded as one set."""
    load = _Load(registry)
    with _no_gc():
        for text, source in sources:
            load.add_text(text, source)
        return load.intents()


def supported_kinds() -> list[tuple[str, str]]:
    """``(apiVersion, kind)`` pairs the loader reads, for docs and error hints."""
    return sorted(KINDS)
