"""Expected responses, Gateway API's way: a request, and what must come back.

Gateway API's mesh tests each list cases (request -> status, backend, the
request the backend saw, response headers, redirect Location). meshproof
judges the same cases, but never "eventually": the mesh says the routes
are programmed first, then every one of :data:`REPEAT` requests per case
(or the case's own ``count``),
each on a fresh connection, must meet every expectation. A deterministic
route that is wrong fails the first request; one that is wrong for a
fraction f of requests passes all 3 with probability (1 - f)^3, which is why
the weighted checks use binomial designs instead (splits.py).

The sample app reflects what it received (path, headers) in its JSON body
and names itself in ``x-version``; a response without ``x-version`` came
from the mesh (Envoy's 404 for no matching rule, a redirect).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from meshproof.mesh.base import MeshAdapter
from meshproof.probe import send
from meshproof.targets.base import Target
from meshproof.targets.model import ProbeResult
from meshproof.verdict.judgement import Verdict

#: Requests per case (Gateway API's default of 3 consecutive successes, without the retries).
REPEAT = 3


@dataclass(frozen=True)
class Case:
    """One request and everything its response must show."""

    name: str
    path: str = "/"
    #: Host the request goes to (a Service name, or an address:port).
    host: str = "reviews"
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    status: int = 200
    #: The version that must answer (v1, v2, v3); "" = any app pod; None = not the app.
    backend: str | None = ""
    #: The path (and query) the app must have received; "" = not checked.
    request_path: str = ""
    request_headers: dict[str, str] = field(default_factory=dict)
    absent_request_headers: tuple[str, ...] = ()
    response_headers: dict[str, str] = field(default_factory=dict)
    absent_response_headers: tuple[str, ...] = ()
    #: Expected Location parts (scheme, host, port, path); given = it is a redirect.
    location: dict[str, str] | None = None
    #: Where the request is sent from: (namespace, workload).
    source: tuple[str, str] = ("bookinfo", "client")
    #: The probe's protocol (http: HTTP/1.1; http2: h2c; grpc: a unary call, path = method).
    protocol: str = "http"
    #: Requests sent for this case (each must meet every expectation).
    count: int = REPEAT

    @property
    def url(self) -> str:
        return f"http://{self.host}{self.path}"


def _body_headers(r: ProbeResult) -> dict[str, str]:
    h = r.json.get("headers")
    return {str(k).lower(): str(v) for k, v in h.items()} if isinstance(h, dict) else {}


def problems(case: Case, r: ProbeResult) -> list[str]:
    """What is wrong with one response for ``case`` (empty: all good)."""
    out = []
    if r.status != case.status:
        out.append(f"status {r.outcome}, want {case.status}")
        return out
    if case.protocol == "grpc" and case.status == 200 and r.grpc_status != 0:
        out.append(f"gRPC status {r.outcome}, want grpc-0")
        return out
    version = r.headers.get("x-version", "")
    if case.backend is None and version:
        out.append(f"answered by app {version}, want the mesh itself")
    elif case.backend is not None and not version:
        out.append("answered by the mesh, want the app")
    elif case.backend and version != case.backend:
        out.append(f"answered by {version}, want {case.backend}")
    if case.request_path:
        got = str(r.json.get("path", ""))
        if got != case.request_path:
            out.append(f"app saw path {got!r}, want {case.request_path!r}")
    seen = _body_headers(r)
    for k, v in case.request_headers.items():
        if seen.get(k.lower()) != v:
            out.append(f"app saw {k}: {seen.get(k.lower())!r}, want {v!r}")
    for k in case.absent_request_headers:
        if k.lower() in seen:
            out.append(f"app saw {k}: {seen[k.lower()]!r}, want it removed")
    for k, v in case.response_headers.items():
        if r.headers.get(k.lower()) != v:
            out.append(f"response {k}: {r.headers.get(k.lower())!r}, want {v!r}")
    for k in case.absent_response_headers:
        if k.lower() in r.headers:
            out.append(f"response has {k}: {r.headers[k.lower()]!r}, want none")
    if case.location is not None:
        out += _location(case, r.headers.get("location", ""))
    return out


def _location(case: Case, location: str) -> list[str]:
    """The redirect's Location against Gateway API's defaults: scheme http, the
    request's host, no port (the scheme's well-known one), the request's path."""
    if not location:
        return ["no Location header"]
    u = urlsplit(location)
    want = {"scheme": "http", "host": case.host.split(":")[0], "port": "",
            "path": case.path.split("?")[0], **case.location}
    got = {"scheme": u.scheme, "host": u.hostname or "", "port": str(u.port or ""),
           "path": u.path}
    return [f"Location {location!r}: {k} {got[k]!r}, want {want[k]!r}"
            for k in want if got[k] != want[k]]


def judge_cases(target: Target, mesh: MeshAdapter, verdict: Verdict, intents: list[Any],
                cases: list[Case]) -> None:
    """Apply ``intents``, wait until programmed, then every case ``case.count`` times."""
    mesh.wait_programmed(mesh.apply_all(intents))
    oks = []
    for case in cases:
        src = target.pod(*case.source)
        verdict.touch(src)
        results = send(target, src, case.url, case.count, headers=case.headers or None,
                       method=case.method, protocol=case.protocol)
        wrong = sorted({p for r in results for p in problems(case, r)})
        evidence = {"sent": len(results), "url": case.url, "method": case.method,
                    "headers": case.headers, "statuses": [r.outcome for r in results],
                    "versions": [r.version for r in results],
                    "location": [r.headers.get("location") for r in results if
                                 r.headers.get("location")][:1],
                    "problems": wrong}
        oks.append(verdict.exact(f"{case.name} ({case.method} {case.url})", not wrong,
                                 evidence))
    assert all(oks), verdict.failed_lines
