"""Several generators as one path: each sends its share of the rate at the same time,
and their answers are merged (HDR histograms added, counts summed).

Why: one generator is one Python process on one core. At ~250-300 us of CPU
per request (docs/load.md) it stops keeping its schedule near 3000 rps, and
a pod on a busy node may manage less; its send lateness then flags the
phase. Several client pods (``--clients N``, one generator each) share the
rate, each with its own open-loop schedule at rate/N; the path's latency is
the merge of their histograms, which is exact for HDR histograms of the same
layout (counts per bucket add). Lateness and dispatch merge the same way, so
one late generator still flags the phase.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from meshproof.load import hist
from meshproof.targets.base import LoadGenerator

#: Generators of a group start together at a wall-clock time this far ahead, unless
#: ``calibrate`` measured how long reaching every generator takes here (an exec through
#: the API server on a cluster); clocks of a cluster's nodes are NTP-synchronised to
#: well under a second.
START_AHEAD_S = 1.5
#: bounds of a calibrated start-ahead: at least this, at most ``START_AHEAD_MAX_S``
START_AHEAD_MIN_S, START_AHEAD_MAX_S = 0.2, 10.0
_SUMMED = ("sent", "ok", "measured", "warmup_requests", "unfinished", "generator_cpu_s",
           "achieved_rps")


def merge_answers(answers: list[dict[str, Any]], order: dict[str, Any]) -> dict[str, Any]:
    """One answer for the path from its generators' (HDR-encoded) answers."""
    out: dict[str, Any] = {k: v for k, v in answers[0].items()
                           if k not in _SUMMED and not k.endswith("_hdr")}
    for k in _SUMMED:
        out[k] = sum(a[k] for a in answers)
    errors: Counter[str] = Counter()
    for a in answers:
        errors.update(a["errors"])
    out["errors"] = dict(errors)
    out["rate"] = float(order["rate"])
    out["connections"] = sum(int(a.get("connections", 0)) for a in answers)
    out["window_s"] = max(float(a["window_s"]) for a in answers)
    for name in hist.ANSWER_HISTS:
        out[f"{name}_hdr"] = hist.encode(hist.merge(hist.decode(a[f"{name}_hdr"])
                                                    for a in answers))
    out["generators"] = len(answers)
    return out


class GeneratorGroup:
    """The generators of one path (one per client pod), driven as one."""

    def __init__(self, gens: list[LoadGenerator]) -> None:
        if not gens:
            raise ValueError("a path needs at least one generator")
        self.gens = gens
        self.start_ahead_s = START_AHEAD_S

    def calibrate(self) -> float:
        """Ask every generator what it is, all at once, and set the start-ahead to twice
        the slowest answer (plus 0.1 s), within bounds: long enough for every run to
        have started before the shared start time, and no longer."""
        t0 = time.monotonic()

        def timed(g: LoadGenerator) -> float:
            g.info()
            return time.monotonic() - t0

        with ThreadPoolExecutor(len(self.gens)) as pool:
            slowest = max(pool.map(timed, self.gens))
        self.start_ahead_s = min(START_AHEAD_MAX_S, max(START_AHEAD_MIN_S, 2 * slowest + 0.1))
        return self.start_ahead_s

    @property
    def labels(self) -> list[str]:
        return [g.label for g in self.gens]

    def run(self, order: dict[str, Any]) -> dict[str, Any]:
        n = len(self.gens)
        if n == 1:
            return hist.with_hdr(self.gens[0].run(order))
        share = {**order, "rate": float(order["rate"]) / n,
                 "connections": max(1, math.ceil(int(order.get("connections", 16)) / n)),
                 "start_at_unix": time.time() + self.start_ahead_s}
        with ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(lambda g: hist.with_hdr(g.run(share)), self.gens))
        return merge_answers(answers, order)

    def info(self) -> dict[str, Any]:
        return {**self.gens[0].info(), "generators": len(self.gens), "pods": self.labels,
                "start_ahead_s": round(self.start_ahead_s, 2)}

    def stop(self) -> None:
        for g in self.gens:
            g.stop()
