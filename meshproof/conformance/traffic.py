"""Sending a check's traffic and summarising what came back.

Every helper returns plain counts plus a compact evidence dict (requests
sent, responses by backend and by status, error kinds), which the verdict
attaches to the report: a failure shows what the probe actually saw.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from meshproof.targets.base import Target

#: Concurrency for sampling: enough to keep n in the thousands quick, low
#: enough that the sample app and sidecars are far from saturation.
CONCURRENCY = 16


def send(target: Target, src: str, url: str, count: int, *, headers: dict[str, str] | None
         = None, method: str = "GET", fresh: bool = True, timeout_s: float = 5.0,
         concurrency: int = CONCURRENCY, as_proxy_uid: bool = False) -> list[dict[str, Any]]:
    """``count`` requests from pod ``src``; returns the probe's per-request results."""
    order = {"url": url, "count": count, "concurrency": min(concurrency, count),
             "headers": headers or {}, "method": method, "fresh": fresh,
             "timeout_s": timeout_s, "deadline_s": 30 + count * 0.05, "keep_body": True}
    return list(target.probe(src, order, as_proxy_uid=as_proxy_uid)["results"])


def outcome(r: dict[str, Any]) -> str:
    """One word per request: the HTTP status, or how it failed (refused/reset/...)."""
    return str(r["status"]) if r["status"] else str(r["error"])


def summary(results: list[dict[str, Any]], by: str = "x-version") -> dict[str, Any]:
    """Evidence: how many were sent, what answered, how they ended."""
    backends = Counter(r["headers"].get(by, "-") for r in results if r["status"])
    return {"sent": len(results), "by_backend": dict(sorted(backends.items())),
            "outcomes": dict(sorted(Counter(outcome(r) for r in results).items())),
            "latency_ms_p50": _pct([r["latency_us"] for r in results], 0.5) / 1000,
            "latency_ms_max": max((r["latency_us"] for r in results), default=0) / 1000}


def _pct(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return float(s[min(len(s) - 1, int(q * len(s)))])


def denied(r: dict[str, Any]) -> bool:
    """Denied means HTTP 403, or the connection refused or reset (DESIGN.md)."""
    return r["status"] == 403 or (r["status"] == 0 and r["error"] in ("refused", "reset",
                                                                        "closed"))


def denial_kind(results: list[dict[str, Any]]) -> dict[str, int]:
    kinds = Counter("403" if r["status"] == 403 else str(r["error"])
                    for r in results if denied(r))
    return dict(kinds)
