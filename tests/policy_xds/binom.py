"""Exact binomial tails, to derive a split test's sample size and acceptance band.

Why exact: normal approximations are poor in the tails we care about
(1e-4) at the small n a lab test can afford.
"""

from __future__ import annotations

from math import comb


def pmf(n: int, p: float, k: int) -> float:
    return comb(n, k) * p**k * (1 - p) ** (n - k)


def prob_in(n: int, p: float, lo: int, hi: int) -> float:
    """P(lo <= X <= hi) for X ~ Binomial(n, p)."""
    return sum(pmf(n, p, k) for k in range(max(lo, 0), min(hi, n) + 1))


def design(p_ok: float, p_bad: float, alpha: float = 1e-4, beta: float = 1e-4,
           n_max: int = 2000) -> tuple[int, int, int]:
    """Smallest n and band [lo, hi] for X (count of one backend) such that
    P(X outside band | p_ok) <= alpha and P(X inside band | p_bad) <= beta.

    The band is the widest one around p_ok*n allowed by alpha (two-sided,
    alpha/2 each side), then checked against p_bad.
    """
    for n in range(10, n_max + 1):
        lo = 0
        while prob_in(n, p_ok, 0, lo) <= alpha / 2:
            lo += 1
        hi = n
        while prob_in(n, p_ok, hi, n) <= alpha / 2:
            hi -= 1
        if prob_in(n, p_ok, lo, hi) >= 1 - alpha and prob_in(n, p_bad, lo, hi) <= beta:
            return n, lo, hi
    raise ValueError(f"no design up to n={n_max}")
