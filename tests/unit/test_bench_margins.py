"""The benchmark's margin reading (benchmarks/margins.py): each bound kind, the narrowest."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from margins import judgement_margins, narrowest, report_margins  # noqa: E402


def test_band_and_latency_margins_zero_tolerance_has_none():
    band = {"label": "reviews-v2", "hits": 60, "design": {"lo": 44, "hi": 110}}
    assert judgement_margins("split-90-10", band)[0]["margin"] == 16
    timing = {"label": "20 x 504 within [295.0, 350] ms", "latency_ms": [301.5, 320, 340.0]}
    m = judgement_margins("timeout-504-within-bound", timing)[0]
    assert (m["margin"], m["observed"], m["unit"]) == (6.5, 301.5, "ms")
    upper = {"label": "504 after 3 x 200 ms tries, within [585.0, 1300] ms",
             "latency_ms": [1290.0]}
    assert judgement_margins("x", upper)[0]["margin"] == 10.0
    zero = {"label": "reviews-v2", "hits": 88, "design": {"lo": 88, "hi": 88}}
    assert judgement_margins("split-100-0", zero) == []
    assert judgement_margins("x", {"label": "every request 503", "ok": True}) == []


def test_narrowest_over_runs_names_the_run():
    r1 = report_margins({"checks": [{"name": "c", "judgements": [
        {"label": "t within [10, 20] ms", "latency_ms": [15]}]}]})
    r2 = report_margins({"checks": [{"name": "c", "judgements": [
        {"label": "t within [10, 20] ms", "latency_ms": [11]}]}]})
    best = narrowest([r1, r2])
    assert best["c: t within [10, 20] ms"]["margin"] == 1 and best[
        "c: t within [10, 20] ms"]["run"] == 2
