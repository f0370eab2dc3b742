"""The statistics behind every proportion check: designs meet both error rates."""

from __future__ import annotations

import math

import pytest

from meshproof.verdict.stats import (controlled_design, design, multi_design, noise_bound,
                                     prob_between)


@pytest.mark.parametrize("expected,margin", [(0.9, 0.1), (0.5, 0.1), (0.3, 0.1),
                                             (0.9, 0.4), (2 / 3, 0.3), (0.1, 0.05)])
def test_design_meets_both_error_rates(expected, margin):
    d = design(expected, margin)
    fail_if_correct = 1 - prob_between(d.n, expected, d.lo, d.hi)
    assert fail_if_correct <= 1e-4 and math.isclose(fail_if_correct, d.alpha, rel_tol=1e-6,
                                                    abs_tol=1e-12)
    for alt in (expected - margin, expected + margin):
        if 0 <= alt <= 1:
            assert prob_between(d.n, alt, d.lo, d.hi) <= 1e-4


def test_smaller_sample_would_not_do():
    d = design(0.9, 0.1)
    smaller = d.n - 40
    # With the best band for the smaller n, a mesh at 80% passes too often.
    from meshproof.verdict.stats import _band, _beta
    lo, hi, _ = _band(smaller, 0.9, 1e-4)
    assert _beta(smaller, 0.9, 0.1, lo, hi) > 1e-4


def test_zero_tolerance_design():
    d = design(0.0, 0.05)
    assert (d.lo, d.hi, d.alpha) == (0, 0, 0.0)
    assert (1 - 0.05) ** d.n <= 1e-4 < (1 - 0.05) ** (d.n - 1)
    assert not d.passes(1)


def test_multi_design_shares_one_sample_and_keeps_familywise_alpha():
    ds = multi_design({"v1": 50, "v2": 50, "v3": 0}, 0.1)
    assert len({d.n for d in ds.values()}) == 1
    assert sum(d.alpha for d in ds.values()) <= 1e-4
    assert ds["v3"].hi == 0


def test_prob_between_is_a_distribution():
    assert math.isclose(prob_between(50, 0.3, 0, 50), 1.0, rel_tol=1e-9)
    assert prob_between(10, 0.5, 5, 4) == 0.0


def test_bad_arguments():
    with pytest.raises(ValueError):
        design(1.2, 0.1)
    with pytest.raises(ValueError):
        design(0.5, 0.0)


@pytest.mark.parametrize("control_max", [0, 3])
def test_controlled_design_meets_both_error_rates_for_any_noise(control_max):
    """Hits S ~ Bin(n, p + (1 - p) q), control C ~ Bin(n, q) (independent): over a grid of
    false-hit rates q, a correct mesh fails (C within bounds, S out of band) and a mesh
    off by the margin passes (C within bounds, S in band) with probability <= 1e-4."""
    d = controlled_design(0.5, 0.1, control_max)
    grid = [i / 2000 for i in range(0, 61)] + [0.05, 0.1, 0.3, 0.7, 1.0]
    for q in grid:
        judged = prob_between(d.control_n, q, 0, control_max)
        fail = 1 - prob_between(d.n, 0.5 + 0.5 * q, d.lo, d.hi)
        assert judged * fail <= 1e-4, (q, judged, fail)
        for p in (0.4, 0.6):
            assert judged * prob_between(d.n, p + (1 - p) * q, d.lo, d.hi) <= 1e-4, (q, p)
    assert d.alpha <= 1e-4 and d.beta <= 1e-4
    assert d.cannot_judge(control_max + 1) and not d.cannot_judge(control_max)
    # The noise bound: a control this clean is that rare at the bound.
    assert math.isclose(prob_between(d.control_n, d.noise, 0, control_max), 1e-4,
                        rel_tol=1e-3)


def test_controlled_design_costs_little_over_the_plain_one():
    plain, ctl = design(0.5, 0.1), controlled_design(0.5, 0.1, 3)
    assert plain.n < ctl.n < 1.2 * plain.n
    assert noise_bound(ctl.n, 3, 1e-4) == ctl.noise
