"""Small views over a probe answer (see fixtures/probe/probe.py for its shape)."""

from __future__ import annotations

from typing import Any


def statuses(answer: dict[str, Any]) -> list[int]:
    """HTTP status per request, 0 where no response came back."""
    return [r["status"] for r in answer["results"]]


def by_pod(answer: dict[str, Any]) -> dict[str, int]:
    """Responses per answering pod (``error:KIND`` for failures)."""
    out: dict[str, int] = {}
    for r in answer["results"]:
        k = r["headers"].get("x-pod", f"error:{r['error']}")
        out[k] = out.get(k, 0) + 1
    return out
