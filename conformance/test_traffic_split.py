"""Conformance: SMI TrafficSplit over reviews v1-v3, by weight and by match.

Weighted checks sample once, after the mesh says the split is programmed,
with n and the pass band derived from both error rates (stats.design): a
correct mesh fails with p <= 1e-4, a mesh off by 10 points passes with
p <= 1e-4 (see meshproof/conformance/splits.py). A backend with weight 0 (or
100) gets none (all) of the same sample: one stray request fails.
"""

from __future__ import annotations

import pytest

from meshproof.conformance.check import check
from meshproof.conformance.splits import REVIEWS, judge_match, judge_weights, source
from meshproof.probe import send
from meshproof.intent import HTTPMatch, TrafficSplit

pytestmark = [pytest.mark.mesh]

def split(weights: dict[str, int], match: HTTPMatch | None = None) -> TrafficSplit:
    return TrafficSplit("bookinfo/reviews",
                        tuple((f"reviews-{v}", w) for v, w in weights.items()), match)


@check("split-100-0", "TrafficSplit reviews-v1 100 / v2 0: every request to v1",
       features=["traffic-split"], catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_100_0(target, mesh, verdict):
    judge_weights(target, mesh, verdict, [split({"v1": 100, "v2": 0})], {"v1": 100, "v2": 0})


@check("split-0-100", "TrafficSplit reviews-v1 0 / v2 100: every request to v2",
       features=["traffic-split"], catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_0_100(target, mesh, verdict):
    judge_weights(target, mesh, verdict, [split({"v1": 0, "v2": 100})], {"v1": 0, "v2": 100})


@check("split-90-10", "TrafficSplit reviews-v1 90 / v2 10, within 10 points",
       features=["traffic-split"], catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_90_10(target, mesh, verdict):
    judge_weights(target, mesh, verdict, [split({"v1": 90, "v2": 10})], {"v1": 90, "v2": 10})


@check("split-50-50-0", "TrafficSplit reviews-v1 50 / v2 50 / v3 0, v3 gets nothing",
       features=["traffic-split"], catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_50_50_0(target, mesh, verdict):
    judge_weights(target, mesh, verdict, [split({"v1": 50, "v2": 50, "v3": 0})], {"v1": 50, "v2": 50, "v3": 0})


@check("split-programmed-first-request",
       "a split flipped 100/0 <-> 0/100 (14 times) is followed from the first request after "
       "the mesh says it is programmed", features=["traffic-split"],
       catches=["weights-ignored"], intents=["TrafficSplit"])
def test_split_flip_takes_effect_when_programmed(target, mesh, verdict):
    src = source(target)
    verdict.touch(src)
    firsts = []
    # 14 flips: a mesh that ignores weights (50/50) passes all of them with p = 2^-14 < 1e-4.
    for version, other in [("v1", "v2"), ("v2", "v1")] * 7:
        mesh.wait_programmed(mesh.apply(split({version: 100, other: 0})))
        first = send(target, src, REVIEWS, 1)[0].version
        firsts.append((version, first))
    ok = verdict.exact("first request follows each flip", all(a == b for a, b in firsts),
                       {"wanted_vs_seen": firsts})
    assert ok, firsts


@check("split-header-match", "a split for requests with header end-user: jason sends "
       "exactly those to v3: another value, a longer one (jasonx), a shorter one, another "
       "case and no header keep the root service (binomial designs, both error rates "
       "<= 1e-4)", features=["traffic-split", "traffic-split-match"],
       catches=["match-ignored", "split-header-prefix"],
       intents=["TrafficSplit", "HTTPRouteGroup"])
def test_split_header_match(target, mesh, verdict):
    near = {f"end-user {v or '(absent)'}": {"url": REVIEWS,
                                             "headers": {"end-user": v} if v else None}
            for v in ("jasonx", "jaso", "Jason", None)}
    judge_match(target, mesh, verdict, [split({"v3": 100}, HTTPMatch(headers=(("end-user", "jason"),)))],
                {"url": REVIEWS, "headers": {"end-user": "jason"}},
                {"url": REVIEWS, "headers": {"end-user": "alice"}}, near)


@check("split-path-match", "a split for paths matching /reviews/1.* sends exactly those "
       "to v3", features=["traffic-split", "traffic-split-match"],
       catches=["match-ignored"], intents=["TrafficSplit", "HTTPRouteGroup"])
def test_split_path_match(target, mesh, verdict):
    judge_match(target, mesh, verdict, [split({"v3": 100}, HTTPMatch(path_regex="/reviews/1.*"))],
                {"url": "http://reviews/reviews/123"}, {"url": "http://reviews/reviews/0"})
