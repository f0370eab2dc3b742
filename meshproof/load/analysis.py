"""From rounds to figures: added latency per percentile with its spread, ratio, costs.

Pure functions over the report's own data (no lab), so the gate and the
tests can recompute everything from a JSON file.
"""

from __future__ import annotations

import statistics
from typing import Any

from meshproof.load import hist
from meshproof.load.settings import MAX_LATENESS_P99_US


def spread(values: list[float]) -> dict[str, Any]:
    """Median (the figure), mean, sample sd, min, max, and the values per round."""
    return {"median": round(statistics.median(values), 1),
            "mean": round(statistics.fmean(values), 1),
            "sd": round(statistics.stdev(values), 1) if len(values) > 1 else 0.0,
            "min": round(min(values), 1), "max": round(max(values), 1),
            "per_round": [round(v, 1) for v in values]}


#: The statistical part of a figure's uncertainty: this many standard errors of the
#: per-round median (about a 95% interval for 5 rounds of near-normal spread).
SE_FACTOR = 2.0


def lateness_bias(rounds: list[dict[str, Any]], pct: str) -> float:
    """The most the generator's late sends can have shifted the added latency at ``pct``.

    Latency runs from the intended send time, so a send late by L adds L to
    that request in whichever path it happened; at a percentile the shift is
    at most the phase's lateness at about the same percentile (a first-order
    bound: exact when late sends and slow answers coincide). The added latency
    is a difference of two paths, each shifted by 0..L: the bound is the larger
    of the two phases' lateness, the median over rounds. p99.9 and max use the
    phase's lateness max. The benchmark ``benchmarks/load_crosscheck.py``
    checks the stated uncertainty against an independent client.
    """
    key = pct if pct in ("p50", "p90", "p99") else "max"
    per = []
    for r in rounds:
        ph = r["phases"]
        vals = [ph[path]["lateness_us"].get(key, ph[path]["lateness_us"]["p99"])
                for path in ("plain", "mesh") if path in ph]
        per.append(max(vals) if vals else 0.0)
    return float(statistics.median(per)) if per else 0.0


def uncertainty(added: dict[str, Any], rounds: list[dict[str, Any]], pct: str) -> dict[str, Any]:
    """The figure's stated uncertainty: ``SE_FACTOR`` standard errors of the median over
    rounds (the machine's noise between rounds) plus the lateness bias bound."""
    se = float(added["sd"]) / (len(added["per_round"]) ** 0.5) if added["per_round"] else 0.0
    bias = lateness_bias(rounds, pct)
    return {"us": round(SE_FACTOR * se + bias, 1), "se_us": round(se, 1),
            "lateness_bias_us": round(bias, 1)}


def merged(rounds: list[dict[str, Any]], path: str) -> Any:
    return hist.merge(hist.decode(r["phases"][path]["latency_hdr"])
                      for r in rounds if path in r["phases"])


def proxy_cost(rounds: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    """Per sidecar and in total: CPU as a fraction of a core per 1000 rps, us per request, RSS."""
    per: dict[str, dict[str, float]] = {}
    for r in rounds:
        ph = r["phases"]["mesh"]
        n = ph["ok"] + sum(ph["errors"].values()) + ph["warmup_requests"]
        for pod, c in ph["cpu"].items():
            acc = per.setdefault(pod, {"cpu_s": 0.0, "wall_s": 0.0, "requests": 0.0})
            acc["cpu_s"] += c["cpu_s"]
            acc["wall_s"] += c["wall_s"]
            acc["requests"] += n
            acc["rss_mb"] = c["rss_mb"]
            acc["private_mb"] = c["private_mb"]
    out: dict[str, Any] = {"sidecars": {}}
    for pod, a in per.items():
        core = a["cpu_s"] / a["wall_s"] if a["wall_s"] else 0.0
        out["sidecars"][pod] = {
            "cpu_s": round(a["cpu_s"], 3),
            "cpu_core_per_1000rps": round(core / (rate / 1000), 4),
            "cpu_us_per_request": round(a["cpu_s"] / a["requests"] * 1e6, 1)
            if a["requests"] else 0.0,
            "rss_mb": a["rss_mb"], "private_mb": a["private_mb"]}
    sc = out["sidecars"].values()
    out["total_cpu_core_per_1000rps"] = round(sum(x["cpu_core_per_1000rps"] for x in sc), 4)
    out["total_rss_mb"] = round(sum(x["rss_mb"] for x in sc), 1)
    out["total_private_mb"] = round(sum(x["private_mb"] for x in sc), 1)
    return out


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """Add the scenario's figures to a runner result (``rounds`` etc.)."""
    rounds = run["rounds"]
    added = {name: spread([r["phases"]["mesh"]["latency_us"][name]
                           - r["phases"]["plain"]["latency_us"][name] for r in rounds])
             for name in hist.PERCENTILES}
    pct = {path: hist.percentiles(merged(rounds, path)) for path in ("plain", "mesh", "floor")}
    ratio = {name: round(pct["mesh"][name] / pct["plain"][name], 2) if pct["plain"][name] else 0.0
             for name in hist.PERCENTILES}
    phases = [ph for r in rounds for ph in r["phases"].values()]
    lateness = {"p50": statistics.median(ph["lateness_us"]["p50"] for ph in phases),
                "p99": max(ph["lateness_us"]["p99"] for ph in phases),
                "max": max(ph["lateness_us"]["max"] for ph in phases)}
    for name in hist.PERCENTILES:
        added[name]["uncertainty"] = uncertainty(added[name], rounds, name)
    flags = [f"round {r['round'] + 1} {path}: {f}" for r in rounds
             for path, ph in r["phases"].items() for f in ph["flags"]]
    notes = [f"round {r['round'] + 1} {path}: send lateness p99 "
             f"{ph['lateness_us']['p99']:.0f} us > {MAX_LATENESS_P99_US:.0f} us (in the uncertainty)"
             for r in rounds for path, ph in r["phases"].items()
             if ph["lateness_us"]["p99"] > MAX_LATENESS_P99_US]
    return {**run, "added_us": added, "percentiles_us": pct, "ratio": ratio,
            "floor_us": pct["floor"], "lateness_us": lateness,
            "proxy": proxy_cost(rounds, run["rate_rps"]),
            "generator_cpu_core": round(statistics.fmean(
                r["phases"]["mesh"]["generator_cpu_s"]
                / (run["duration_s"] + run.get("warmup_s", 0.0))
                for r in rounds), 3),
            "valid": not flags, "flags": flags, "notes": notes}
