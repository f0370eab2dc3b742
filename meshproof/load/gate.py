"""The release gate: did the added latency at p50, p90 or p99 get worse than the noise allows?

Threshold per percentile: ``K`` standard errors of the difference of the two
runs' median added latency, from each run's spread across its rounds
(sd / sqrt(rounds)), plus each run's lateness bias bound (the most its
generator's late sends can have shifted its figure: the base down by up to
its bound, the current up by up to its own; ``meshproof.load.analysis``), and
never below ``MIN_US``: sd estimated from a few rounds can come out tiny by
luck, and 20 us is below anything a user would notice. So a noisy run is
compared with its measured uncertainty instead of being refused; only a run
that did not keep its rate or lost requests is (flagged, not valid).
p99.9 and max are never gated (VM stalls of 1-16 ms dominate them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from meshproof.load.hist import GATED

K = 4.0
MIN_US = 20.0


@dataclass(frozen=True)
class Verdict:
    scenario: str
    percentile: str
    baseline_us: float
    current_us: float
    threshold_us: float

    @property
    def regressed(self) -> bool:
        return self.current_us - self.baseline_us > self.threshold_us

    def line(self) -> str:
        word = "REGRESSED" if self.regressed else "ok"
        return (f"{word:<9} {self.scenario} {self.percentile}: added "
                f"{self.baseline_us / 1000:+.3f} ms -> {self.current_us / 1000:+.3f} ms "
                f"(allowed up to +{self.threshold_us / 1000:.3f} ms more)")


def threshold(base: dict[str, Any], cur: dict[str, Any]) -> float:
    def se(s: dict[str, Any]) -> float:
        return float(s["sd"]) / math.sqrt(max(len(s["per_round"]), 1))

    def bias(s: dict[str, Any]) -> float:
        return float(s.get("uncertainty", {}).get("lateness_bias_us", 0.0))

    return max(MIN_US, K * math.sqrt(se(base) ** 2 + se(cur) ** 2) + bias(base) + bias(cur))


def compare(baseline: dict[str, Any], current: dict[str, Any]) -> list[Verdict]:
    """A verdict per gated percentile of every scenario present in both reports."""
    out = []
    for name, cur in current["scenarios"].items():
        base = baseline["scenarios"].get(name)
        if base is None:
            continue
        for p in GATED:
            b, c = base["added_us"][p], cur["added_us"][p]
            out.append(Verdict(name, p, b["median"], c["median"], threshold(b, c)))
    return out


def judge(baseline: dict[str, Any], current: dict[str, Any]) -> tuple[int, list[str]]:
    """(exit code, lines): 1 when a gated percentile regressed or the run is not valid."""
    verdicts = compare(baseline, current)
    lines = [v.line() for v in verdicts]
    code = 0
    if not verdicts:
        lines.append("no scenario in common with the baseline: nothing to judge")
        code = 2
    bad = [v for v in verdicts if v.regressed]
    if bad:
        lines.append("GATE FAILED: added latency regressed at "
                     + ", ".join(f"{v.scenario} {v.percentile}" for v in bad))
        code = 1
    if not current.get("valid", False):
        flags = [f for s in current["scenarios"].values() for f in s["flags"]][:3]
        lines.append("GATE FAILED: this run is flagged (not valid): " + "; ".join(flags))
        code = code or 1
    return code, lines
