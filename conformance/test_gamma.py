"""Conformance: the same splits stated as Gateway API HTTPRoutes with a Service parent (GAMMA).

The routes are the example files in fixtures/policies/, loaded by the policy
loader exactly as a user's would be.
"""

from __future__ import annotations

import pytest

from meshproof import paths
from meshproof.conformance.check import check
from meshproof.conformance.splits import REVIEWS, judge_match, judge_weights
from meshproof.policy.loader import load_files

pytestmark = [pytest.mark.mesh]

POLICIES = paths.FIXTURES / "policies"


@check("gamma-split-90-10", "an HTTPRoute with weighted backendRefs splits reviews v1/v3 90/10",
       features=["gamma-httproute", "traffic-split"], catches=["weights-ignored"],
       intents=["HTTPRoute"])
def test_gamma_weighted_split(target, mesh, verdict):
    intents = load_files([POLICIES / "gamma-httproute-split.yaml"])
    judge_weights(target, mesh, verdict, intents, {"v1": 90, "v3": 10})


@check("gamma-header-match", "an HTTPRoute matching header end-user: jason sends exactly "
       "those requests to reviews-v3", features=["gamma-httproute", "traffic-split-match"],
       catches=["match-ignored"], intents=["HTTPRoute"])
def test_gamma_header_match(target, mesh, verdict):
    intents = load_files([POLICIES / "gamma-httproute-match.yaml"])
    judge_match(target, mesh, verdict, intents, {"url": REVIEWS, "headers": {"end-user": "jason"}},
                {"url": REVIEWS, "headers": {"end-user": "alice"}})
