"""How close each check came to its bound, from a ConformanceReport's judgements.

A check that passes by a hair on a quiet machine fails on a loaded one; the
benchmark reports, per check, the narrowest margin seen over its runs:
- statistical judgements (``design`` with a pass band): hits vs the band, in
  requests (how many more or fewer hits would have failed the check);
- timing judgements ("... within [LO, HI] ms" with ``latency_ms``): the closest
  latency to either bound, in ms.
Judgements without a bound (every request must behave, a zero-tolerance band
such as 88..88) have no margin.
"""

from __future__ import annotations

import re
from typing import Any

_WITHIN = re.compile(r"within \[([0-9.]+), ([0-9.]+)\] ms")


def judgement_margins(check: str, judgement: dict[str, Any]) -> list[dict[str, Any]]:
    """Zero or more margins of one judgement: {check, label, observed, bound, margin, unit}."""
    label = str(judgement.get("label", ""))
    out: list[dict[str, Any]] = []
    design = judgement.get("design")
    if isinstance(design, dict) and "lo" in design and "hits" in judgement \
            and design["lo"] != design["hi"]:
        hits, lo, hi = int(judgement["hits"]), int(design["lo"]), int(design["hi"])
        out.append({"check": check, "label": label, "observed": hits,
                    "bound": f"{lo}..{hi}", "margin": min(hits - lo, hi - hits),
                    "unit": "requests"})
    m = _WITHIN.search(label)
    lat = judgement.get("latency_ms")
    if m and isinstance(lat, list) and lat:
        lo, hi = float(m.group(1)), float(m.group(2))
        low, high = min(lat), max(lat)
        margin, observed = min((low - lo, low), (hi - high, high))
        out.append({"check": check, "label": label, "observed": round(observed, 2),
                    "bound": f"[{lo}, {hi}]", "margin": round(margin, 2), "unit": "ms"})
    return out


def report_margins(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for c in report.get("checks", []) for j in c.get("judgements", [])
            for m in judgement_margins(str(c.get("name")), j)]


def narrowest(per_run: list[list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per check and judgement: the run with the smallest margin."""
    best: dict[str, dict[str, Any]] = {}
    for run, margins in enumerate(per_run):
        for m in margins:
            key = f"{m['check']}: {m['label']}"
            if key not in best or m["margin"] < best[key]["margin"]:
                best[key] = {**m, "run": run + 1}
    return dict(sorted(best.items()))
