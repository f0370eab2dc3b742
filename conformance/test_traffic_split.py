"""Conformance: SMI TrafficSplit over reviews v1-v3, by weight and by match.

Weighted checks sample once, after the mesh says the split is programmed,
with n and the pass band derived from both error rates (stats.design): a
correct mesh fails with p <= 1e-4, a mesh off by MARGIN passes with p <= 1e-4.
A backend with weight 0 (or 100) is zero-tolerance: one stray request fails.
"""

from __future__ import annotations

import pytest

from meshproof.conformance.check import check
from meshproof.conformance.stats import design, multi_design
from meshproof.conformance.traffic import send, summary
from meshproof.intent import HTTPMatch, TrafficSplit

pytestmark = [pytest.mark.lab, pytest.mark.mesh]

SRC = "bookinfo/client-0"
REVIEWS = "http://reviews/reviews/0"
#: A split off by 10 points (e.g. 80/20 for 90/10) must fail.
MARGIN = 0.10
#: For zero-tolerance backends: a mesh leaking 5% of requests must fail.
LEAK = 0.05


def split(weights: dict[str, int], match: HTTPMatch | None = None) -> TrafficSplit:
    return TrafficSplit("bookinfo/reviews",
                        tuple((f"reviews-{v}", w) for v, w in weights.items()), match)


def judge_weights(lab, mesh, verdict, weights: dict[str, int]) -> None:
    mesh.wait_programmed(mesh.apply(split(weights)))
    verdict.touch(SRC)
    designs = multi_design(weights, MARGIN)
    n = next(iter(designs.values())).n
    results = send(lab, SRC, REVIEWS, n)
    ev = summary(results)
    verdict.note(f"sent {n}, answered by {ev['by_backend']}")
    oks = [verdict.judge(f"reviews-{v}", d, ev["by_backend"].get(v, 0), ev)
           for v, d in designs.items()]
    assert all(oks), verdict.lines


@check("split-100-0", "TrafficSplit reviews-v1 100 / v2 0: every request to v1",
       features=["traffic-split"], catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_100_0(lab, mesh, verdict):
    judge_weights(lab, mesh, verdict, {"v1": 100, "v2": 0})


@check("split-0-100", "TrafficSplit reviews-v1 0 / v2 100: every request to v2",
       features=["traffic-split"], catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_0_100(lab, mesh, verdict):
    judge_weights(lab, mesh, verdict, {"v1": 0, "v2": 100})


@check("split-90-10", "TrafficSplit reviews-v1 90 / v2 10, within 10 points",
       features=["traffic-split"], catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_90_10(lab, mesh, verdict):
    judge_weights(lab, mesh, verdict, {"v1": 90, "v2": 10})


@check("split-50-50-0", "TrafficSplit reviews-v1 50 / v2 50 / v3 0, v3 gets nothing",
       features=["traffic-split"], catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_50_50_0(lab, mesh, verdict):
    judge_weights(lab, mesh, verdict, {"v1": 50, "v2": 50, "v3": 0})


@check("split-programmed-first-request",
       "a split flipped 100/0 <-> 0/100 is followed from the first request after "
       "the mesh says it is programmed", features=["traffic-split"],
       catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_flip_takes_effect_when_programmed(lab, mesh, verdict):
    verdict.touch(SRC)
    firsts = []
    for version, other in (("v1", "v2"), ("v2", "v1"), ("v1", "v2"), ("v2", "v1")):
        mesh.wait_programmed(mesh.apply(split({version: 100, other: 0})))
        first = send(lab, SRC, REVIEWS, 1)[0]["headers"].get("x-version")
        firsts.append((version, first))
    ok = verdict.exact("first request follows each flip", all(a == b for a, b in firsts),
                       {"wanted_vs_seen": firsts})
    assert ok, firsts


def judge_match(lab, mesh, verdict, match: HTTPMatch, matching: dict, other: dict) -> None:
    """Matching requests all go to v3; the rest keep the root service (v1/v2/v3)."""
    mesh.wait_programmed(mesh.apply(split({"v3": 100}, match)))
    verdict.touch(SRC)
    only = design(1.0, LEAK)  # every matching request to v3
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


@check("split-header-match", "a split for requests with header end-user: jason sends "
       "exactly those to v3", features=["traffic-split", "traffic-split-match"],
       catches=["match-ignored"], intents=["TrafficSplit", "HTTPRouteGroup"])
def test_split_header_match(lab, mesh, verdict):
    judge_match(lab, mesh, verdict, HTTPMatch(headers=(("end-user", "jason"),)),
                {"url": REVIEWS, "headers": {"end-user": "jason"}},
                {"url": REVIEWS, "headers": {"end-user": "alice"}})


@check("split-path-match", "a split for paths matching /reviews/1.* sends exactly those "
       "to v3", features=["traffic-split", "traffic-split-match"],
       catches=["match-ignored"], intents=["TrafficSplit", "HTTPRouteGroup"])
def test_split_path_match(lab, mesh, verdict):
    judge_match(lab, mesh, verdict, HTTPMatch(path_regex="/reviews/1.*"),
                {"url": "http://reviews/reviews/123"}, {"url": "http://reviews/reviews/0"})
