"""A PNG per experiment: success rate and latency over time, the fault window shaded.

One line per probe series (a probe function and its URL): an experiment with a
small-body and a large-body probe shows both, not one zig-zag. The fault window
runs from the first injection to the last removal the event log saw (to the
last sample when a run was cut short).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _series(samples: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        key = f"{s.get('probe', '')} {s.get('src', '')} -> {s.get('url', '')}"
        if s.get("body_bytes"):
            key += f" ({s['body_bytes']} B)"
        out.setdefault(key, []).append(s)
    return out


def plot(mp: dict[str, Any], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = mp.get("series") or []
    t0 = min([s["t0"] for s in samples] + [e["t"] for e in mp.get("injected") or []]
             + [m["t"] for m in mp.get("marks") or []] or [0.0])
    fig, (a1, a2) = plt.subplots(2, 1, sharex=True, figsize=(9, 5.5))
    xs_all: list[float] = []
    for label, ss in _series(samples).items():
        xs = [s["t0"] - t0 for s in ss]
        xs_all += xs
        a1.plot(xs, [100.0 * s["ok"] / s["n"] if s["n"] else 0.0 for s in ss], "o-", ms=3,
                label=label)
        line = a2.plot(xs, [s["p50_ms"] for s in ss], "o-", ms=3, label=f"p50 {label}")
        a2.plot(xs, [s["max_ms"] for s in ss], "x:", ms=4, color=line[0].get_color(),
                label=f"max {label}")
    a1.set_ylabel("HTTP 200 (%)")
    a1.set_ylim(-5, 105)
    a1.legend(loc="lower left", fontsize=6)
    a2.set_ylabel("latency (ms)")
    a2.set_xlabel("seconds since start")
    a2.legend(loc="upper right", fontsize=6)
    inj = [e["t"] - t0 for e in mp.get("injected") or [] if e["kind"] == "inject"]
    rem = [e["t"] - t0 for e in mp.get("injected") or [] if e["kind"] == "remove"]
    if inj:
        start = min(inj)
        end = max(rem) if rem and max(rem) > start else (max(xs_all) if xs_all else start)
        for ax in (a1, a2):
            ax.axvspan(start, end, color="red", alpha=0.12)
        a1.text(start, 50, " fault window", fontsize=7, color="darkred")
    for m in mp.get("marks") or []:
        for ax in (a1, a2):
            ax.axvline(m["t"] - t0, color="grey", lw=0.6, ls=":")
        a1.text(m["t"] - t0, 102, m["phase"], fontsize=7, rotation=0)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
