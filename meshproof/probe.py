"""Sending a check's traffic and summarising what came back (any target, any mesh).

``send`` runs one bounded batch from a pod through the target interface;
``summary`` turns results into the compact evidence a verdict attaches to the
report (requests sent, responses by backend and by outcome, latency), so a
failure shows what the probe actually saw. No pytest, no lab: chaos
experiments and the CLI use this too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from meshproof.targets.base import Target
from meshproof.targets.model import Pod, ProbeOrder, ProbeResult, TLSFiles

#: Concurrency for sampling: enough to keep n in the thousands quick, low
#: enough that the sample app and sidecars are far from saturation.
CONCURRENCY = 16


def order(url: str, count: int = 1, *, headers: dict[str, str] | None = None,
          method: str = "GET", fresh: bool = True, timeout_s: float = 5.0,
          concurrency: int = CONCURRENCY, tls: TLSFiles | None = None,
          protocol: str = "http", body: str = "", stream_count: int = 0,
          interleave: tuple[str, ...] = ()) -> ProbeOrder:
    """A probe order whose whole-batch deadline grows with its size (bounded).

    ``protocol``: ``http`` (HTTP/1.1), ``http2``, ``grpc`` or ``tcp`` (see ``ProbeOrder``);
    ``interleave``: more URLs, taken in turn with ``url`` (see ``ProbeOrder``).
    """
    return ProbeOrder(url=url, count=count, concurrency=max(1, min(concurrency, count)),
                      method=method, headers=tuple(sorted((headers or {}).items())),
                      body=body, fresh=fresh, timeout_s=timeout_s,
                      deadline_s=30 + count * 0.05, tls=tls, protocol=protocol,
                      stream_count=stream_count, interleave=tuple(interleave))


def send(target: Target, src: Pod, url: str, count: int = 1, **kw: Any) -> list[ProbeResult]:
    """``count`` requests from pod ``src`` to ``url`` (keywords as for ``order``)."""
    return target.probe(src, order(url, count, **kw))


def summary(results: list[ProbeResult], by: str = "x-version") -> dict[str, Any]:
    """Evidence: how many were sent, what answered, how they ended."""
    backends = Counter(r.headers.get(by, "-") for r in results if r.status or r.ok)
    latencies = [r.latency_us for r in results]
    out: dict[str, Any] = {
        "sent": len(results), "by_backend": dict(sorted(backends.items())),
        "outcomes": dict(sorted(Counter(r.outcome for r in results).items())),
        "latency_ms_p50": _pct(latencies, 0.5) / 1000,
        "latency_ms_p99": _pct(latencies, 0.99) / 1000,
        "latency_ms_max": max(latencies, default=0) / 1000}
    # A request that got no answer says how and when (which request, its detail, how
    # long it took): a reviewer can tell a reset on connect from one mid-response.
    failed = [{"index": i, "error": r.error, "detail": r.detail[:200],
               "latency_ms": r.latency_us / 1000}
              for i, r in enumerate(results) if r.status == 0 and r.error]
    if failed:
        out["no_answer"] = failed[:MAX_FAILED_SHOWN]
    return out


#: How many unanswered requests a summary describes one by one (the rest are counted).
MAX_FAILED_SHOWN = 5


def _pct(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return float(s[min(len(s) - 1, int(q * len(s)))])


#: gRPC's PERMISSION_DENIED: how a proxy's 403 reaches a gRPC caller (Envoy maps it).
GRPC_PERMISSION_DENIED = 7


def denied(r: ProbeResult) -> bool:
    """Denied means HTTP 403 (gRPC: PERMISSION_DENIED), or the connection refused, reset
    or closed before an answer (DESIGN.md). TCP: closed without echoing the payload."""
    if r.protocol == "grpc" and r.status == 200:
        return r.grpc_status == GRPC_PERMISSION_DENIED
    return r.status == 403 or (r.status == 0 and not r.ok
                               and r.error in ("refused", "reset", "closed"))


def denial_kind(results: list[ProbeResult]) -> dict[str, int]:
    """How denial looked: ``403``, ``grpc-7``, ``reset``, ``refused`` or ``closed``."""
    return dict(Counter("403" if r.status == 403 else
                        f"grpc-{r.grpc_status}" if r.protocol == "grpc" and r.status == 200
                        else str(r.error) for r in results if denied(r)))


def all_ok(results: list[ProbeResult]) -> bool:
    """Every request did what was asked (HTTP 200; gRPC status 0; TCP echoed; see
    ``ProbeResult.ok``), and there was at least one."""
    return bool(results) and all(r.ok for r in results)


def all_denied(results: list[ProbeResult]) -> bool:
    return bool(results) and all(denied(r) for r in results)


def denial_evidence(results: list[ProbeResult]) -> dict[str, Any]:
    """``summary`` plus how the denial looked."""
    return {**summary(results), "denied_as": denial_kind(results)}
