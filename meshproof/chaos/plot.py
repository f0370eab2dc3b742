"""A PNG per experiment: success rate and latency over time, the fault window shaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(mp: dict[str, Any], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = mp.get("series") or []
    t0 = min([s["t0"] for s in series] + [e["t"] for e in mp.get("injected") or []]
             + [m["t"] for m in mp.get("marks") or []] or [0.0])
    xs = [s["t0"] - t0 for s in series]
    rate = [100.0 * s["ok"] / s["n"] if s["n"] else 0.0 for s in series]
    fig, (a1, a2) = plt.subplots(2, 1, sharex=True, figsize=(9, 5.5))
    a1.plot(xs, rate, "o-", ms=3)
    a1.set_ylabel("HTTP 200 (%)")
    a1.set_ylim(-5, 105)
    a2.plot(xs, [s["p50_ms"] for s in series], "o-", ms=3, label="p50")
    a2.plot(xs, [s["p99_ms"] for s in series], "s-", ms=3, label="p99")
    a2.plot(xs, [s["max_ms"] for s in series], "x", ms=4, label="max")
    a2.set_ylabel("latency (ms)")
    a2.set_xlabel("seconds since start")
    a2.legend(loc="upper right")
    inj = [e["t"] - t0 for e in mp.get("injected") or [] if e["kind"] == "inject"]
    rem = [e["t"] - t0 for e in mp.get("injected") or [] if e["kind"] == "remove"]
    if inj:
        start = min(inj)
        end = max(rem) if rem and max(rem) > start else (max(xs) if xs else start)
        for ax in (a1, a2):
            ax.axvspan(start, end, color="red", alpha=0.12, label="fault window")
    for m in mp.get("marks") or []:
        for ax in (a1, a2):
            ax.axvline(m["t"] - t0, color="grey", lw=0.6, ls=":")
        a1.text(m["t"] - t0, 102, m["phase"], fontsize=7, rotation=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
