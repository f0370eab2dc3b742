"""Sound verdicts for proportions: sample sizes derived from both error rates.

Every statistical check states two numbers up front:
- ``alpha``: the chance that a correct mesh fails the check (false alarm);
- ``beta``: the chance that a mesh off by ``margin`` passes it (missed defect).
From those and the expected proportion, ``design`` derives the sample size
and the acceptance band with exact binomial tails. The check then samples
once, after the mesh says the config is programmed, and judges once: no
retry-until-green (which inflates alpha and hides real defects).

Exact tails are computed in log space (lgamma), so no SciPy is needed and
n in the thousands is fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable, TypeVar

DEFAULT_ALPHA = 1e-4
DEFAULT_BETA = 1e-4
MAX_N = 20_000


def _log_pmf(n: int, k: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


@lru_cache(maxsize=4096)
def _pmf(n: int, p: float) -> tuple[float, ...]:
    return tuple(math.exp(_log_pmf(n, k, p)) for k in range(n + 1))


def prob_between(n: int, p: float, lo: int, hi: int) -> float:
    """P(lo <= X <= hi) for X ~ Binomial(n, p)."""
    if lo > hi:
        return 0.0
    pmf = _pmf(n, p)
    return min(1.0, sum(pmf[max(lo, 0):min(hi, n) + 1]))


@dataclass(frozen=True)
class Design:
    """A proportion check: count successes in ``n`` trials, pass iff in [lo, hi]."""

    expected: float  # the proportion a correct mesh produces
    margin: float  # a mesh off by this much (either side) must fail
    n: int
    lo: int
    hi: int
    alpha: float  # achieved: P(fail | correct)
    beta: float  # achieved: P(pass | off by margin), the worse side

    def passes(self, successes: int) -> bool:
        return self.lo <= successes <= self.hi

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def describe(self) -> str:
        return (f"n={self.n}, pass iff {self.lo} <= hits <= {self.hi} (expected "
                f"{self.expected:.0%}); correct mesh fails with p={self.alpha:.1e}, "
                f"a mesh off by {self.margin:.0%} passes with p={self.beta:.1e}")


def _band(n: int, p0: float, alpha: float) -> tuple[int, int, float]:
    """The widest central band whose two tails together hold at most ``alpha``."""
    pmf = _pmf(n, p0)
    lo, tail = 0, 0.0
    while lo <= n and tail + pmf[lo] <= alpha / 2:
        tail += pmf[lo]
        lo += 1
    hi, tail_hi = n, 0.0
    while hi >= 0 and tail_hi + pmf[hi] <= alpha / 2:
        tail_hi += pmf[hi]
        hi -= 1
    return lo, hi, tail + tail_hi


def _beta(n: int, p0: float, margin: float, lo: int, hi: int) -> float:
    alts = [p for p in (p0 - margin, p0 + margin) if 0.0 <= p <= 1.0]
    return max(prob_between(n, p, lo, hi) for p in alts)


def design(expected: float, margin: float, alpha: float = DEFAULT_ALPHA,
           beta: float = DEFAULT_BETA) -> Design:
    """The smallest n (and its band) meeting both error rates.

    ``expected`` 0 or 1 (a backend that must get none, or all) is the
    zero-tolerance case: any miss fails (alpha = 0), and n is the smallest
    with (1 - margin)^n <= beta.
    """
    if not 0.0 <= expected <= 1.0 or not 0.0 < margin <= 1.0:
        raise ValueError("expected must be in [0, 1] and margin in (0, 1]")
    if expected in (0.0, 1.0):
        n = max(1, math.ceil(math.log(beta) / math.log1p(-margin))) if margin < 1 else 1
        lo, hi = (0, 0) if expected == 0.0 else (n, n)
        return Design(expected, margin, n, lo, hi, 0.0, (1 - margin) ** n)

    def ok(n: int) -> Design | None:
        lo, hi, a = _band(n, expected, alpha)
        b = _beta(n, expected, margin, lo, hi)
        return Design(expected, margin, n, lo, hi, a, b) if b <= beta else None

    # Exponential search, then bisection on n (beta shrinks with n, up to
    # lattice wiggles; the final answer is verified, never assumed).
    return _smallest_n(ok, f"expected={expected}, margin={margin}: widen the margin")


def multi_design(weights: dict[str, int], margin: float, alpha: float = DEFAULT_ALPHA,
                 beta: float = DEFAULT_BETA) -> dict[str, Design]:
    """One design per backend of a split, sharing one sample (the largest n).

    The family-wise false-alarm rate stays within ``alpha`` by Bonferroni
    (alpha / k per backend); each backend's band is recomputed for the
    shared n so its own rates only improve.
    """
    total = sum(weights.values())
    k = len(weights)
    per = {b: design(w / total, margin, alpha / k, beta) for b, w in weights.items()}
    n = max(d.n for d in per.values())
    out: dict[str, Design] = {}
    for b, d in per.items():
        if d.expected in (0.0, 1.0):
            lo, hi = (0, 0) if d.expected == 0.0 else (n, n)
            out[b] = Design(d.expected, margin, n, lo, hi, 0.0, (1 - margin) ** n)
        else:
            lo, hi, a = _band(n, d.expected, alpha / k)
            out[b] = Design(d.expected, margin, n, lo, hi, a,
                            _beta(n, d.expected, margin, lo, hi))
    return out


# ---------------------------------------------------------------- one-sided noise

def _upper_tail_start(n: int, p: float, alpha: float) -> tuple[int, float]:
    """The smallest ``hi`` with P(X > hi) <= ``alpha`` for X ~ Binomial(n, p), and that tail."""
    pmf = _pmf(n, p)
    hi, tail = n, 0.0
    while hi >= 0 and tail + pmf[hi] <= alpha:
        tail += pmf[hi]
        hi -= 1
    return hi, tail


def _lower_tail_end(n: int, p: float, alpha: float) -> tuple[int, float]:
    """The largest ``lo`` with P(X < lo) <= ``alpha`` for X ~ Binomial(n, p), and that tail."""
    pmf = _pmf(n, p)
    lo, tail = 0, 0.0
    while lo <= n and tail + pmf[lo] <= alpha:
        tail += pmf[lo]
        lo += 1
    return lo, tail


def noise_bound(m: int, k: int, gamma: float) -> float:
    """The rate q at which a control group of ``m`` shows at most ``k`` false hits with
    probability ``gamma`` (P(Binomial(m, q) <= k) = gamma): above it, a run that shows at
    most ``k`` happens less often than ``gamma``."""
    def cdf(q: float) -> float:  # P(X <= k), k small: its own k + 1 terms
        return sum(math.exp(_log_pmf(m, j, q)) for j in range(min(k, m) + 1))

    lo, hi = 0.0, 1.0
    for _ in range(60):  # bisection: P(X <= k) falls as q grows
        mid = (lo + hi) / 2
        if cdf(mid) > gamma:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class ControlledDesign(Design):
    """A proportion check whose hits may be inflated by noise, bounded by a control group.

    The noise is one-sided: a request that got the treatment is always a hit;
    one that did not is a (false) hit with some unknown probability q (on a
    loaded machine, an undelayed request as slow as the delay). ``control_n``
    untreated requests, interleaved with the sample, count q's false hits: more
    than ``control_max`` and the check cannot judge (q may be too large for the
    band). Otherwise the band's upper end allows q up to ``noise``, the rate
    above which a control shows at most ``control_max`` false hits with
    probability below both error rates. ``alpha`` and ``beta`` are achieved over
    every q (see ``controlled_design``).
    """

    control_n: int
    control_max: int
    noise: float

    def cannot_judge(self, control_hits: int) -> bool:
        return control_hits > self.control_max

    def describe(self) -> str:
        return (super().describe() + f"; for any false-hit rate, given a control of "
                f"{self.control_n} with at most {self.control_max} false hits (else cannot "
                f"judge; the band allows a rate up to {self.noise:.2%})")


@lru_cache(maxsize=64)
def controlled_design(expected: float, margin: float, control_max: int,
                      alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA
                      ) -> ControlledDesign:
    """The smallest n (with a control group of the same size) meeting both error rates
    whatever the false-hit rate q of untreated requests.

    Hits S ~ Binomial(n, p + (1 - p) q), control false hits C ~ Binomial(n, q). The check
    cannot judge when C > ``control_max``; else it passes iff lo <= S <= hi, with
    - lo: P(Binomial(n, expected) < lo) <= alpha/2 (q = 0 is the lower tail's worst case);
    - hi: P(Binomial(n, expected + (1 - expected) q_max) > hi) <= alpha/2, where q_max is
      ``noise_bound(n, control_max, g)`` with g = min(alpha, beta).
    A correct mesh fails with probability at most max(the two tails, g): for q <= q_max
    the tails hold, for q > q_max even passing the control has probability < g. A mesh
    off by ``margin`` passes with probability at most max(g, P(Binomial(n, expected +
    margin) <= hi), P(Binomial(n, p' + (1 - p') q_max) >= lo) with p' = expected - margin).
    """
    if not 0.0 < expected < 1.0 or not 0.0 < margin < min(expected, 1 - expected) + 1e-12:
        raise ValueError("expected must be in (0, 1) and margin within it")
    g = min(alpha, beta)
    low = expected - margin

    def ok(n: int) -> ControlledDesign | None:
        q = noise_bound(n, control_max, g)
        lo, a_lo = _lower_tail_end(n, expected, alpha / 2)
        hi, a_hi = _upper_tail_start(n, expected + (1 - expected) * q, alpha / 2)
        b = max(g, prob_between(n, expected + margin, 0, hi),
                prob_between(n, low + (1 - low) * q, lo, n))
        if b > beta:
            return None
        return ControlledDesign(expected, margin, n, lo, hi, max(a_lo + a_hi, g), b,
                                control_n=n, control_max=control_max, noise=q)

    return _smallest_n(ok, f"expected={expected}, margin={margin}, control_max={control_max}")


_T = TypeVar("_T")


def _smallest_n(ok: Callable[[int], _T | None], what: str) -> _T:
    """The design ``ok`` returns at the smallest n it accepts: exponential search, then
    bisection (beta shrinks with n, up to lattice wiggles; the answer is verified by
    ``ok`` itself, never assumed). Bounded by MAX_N."""
    hi_n = 8
    while ok(hi_n) is None:
        hi_n *= 2
        if hi_n > MAX_N:
            raise ValueError(f"no design within n <= {MAX_N} for {what}")
    lo_n = hi_n // 2
    while lo_n + 1 < hi_n:
        mid = (lo_n + hi_n) // 2
        if ok(mid) is None:
            lo_n = mid
        else:
            hi_n = mid
    found = ok(hi_n)
    assert found is not None
    return found
