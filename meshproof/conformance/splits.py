"""Judging traffic splits, however they were stated (SMI intent or GAMMA HTTPRoute).

``MARGIN``: a split off by 10 points (e.g. 80/20 for 90/10) must fail;
weight-0 and weight-100 backends are zero-tolerance within the same sample.
"""

from __future__ import annotations

from typing import Any

from meshproof.conformance.stats import design, multi_design
from meshproof.conformance.traffic import send, summary
from meshproof.intent import Intent

SRC = "bookinfo/client-0"
REVIEWS = "http://reviews/reviews/0"
MARGIN = 0.10
#: A mesh leaking 5% of matching requests away from their backend must fail.
LEAK = 0.05


def judge_weights(lab: Any, mesh: Any, verdict: Any, intents: list[Intent],
                  weights: dict[str, int]) -> None:
    """Apply ``intents`` (one version), sample once, judge each backend's share."""
    mesh.wait_programmed(mesh.apply_all(intents))
    verdict.touch(SRC)
    designs = multi_design(weights, MARGIN)
    n = next(iter(designs.values())).n
    results = send(lab, SRC, REVIEWS, n)
    ev = summary(results)
    verdict.note(f"sent {n}, answered by {ev['by_backend']}")
    oks = [verdict.judge(f"reviews-{v}", d, ev["by_backend"].get(v, 0), ev)
           for v, d in designs.items()]
    assert all(oks), verdict.lines


def judge_match(lab: Any, mesh: Any, verdict: Any, intents: list[Intent],
                matching: dict[str, Any], other: dict[str, Any]) -> None:
    """Matching requests all go to v3; the rest keep the root service (v1/v2/v3)."""
    mesh.wait_programmed(mesh.apply_all(intents))
    verdict.touch(SRC)
    only = design(1.0, LEAK)
    hit = send(lab, SRC, matching["url"], only.n, headers=matching.get("headers"))
    ev_hit = summary(hit)
    ok1 = verdict.judge("matching -> v3", only, ev_hit["by_backend"].get("v3", 0), ev_hit)
    # Non-matching requests are balanced over three versions: 2/3 not v3. A
    # mesh ignoring the match sends them all to v3 (0 not v3): margin 0.3.
    rest = design(2 / 3, 0.3)
    miss = send(lab, SRC, other["url"], rest.n, headers=other.get("headers"))
    ev_miss = summary(miss)
    not_v3 = sum(n for v, n in ev_miss["by_backend"].items() if v != "v3")
    ok2 = verdict.judge("non-matching -> not only v3", rest, not_v3, ev_miss)
    assert ok1 and ok2, verdict.lines
