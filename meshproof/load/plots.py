"""PNG plots of a load report (matplotlib, Agg: no display on a CI box).

- ``<stem>-<scenario>-cdf.png``: latency CDF of baseline, mesh and the
  generator floor, log-scaled tail (1 - F), all rounds merged;
- ``<stem>-<scenario>-rounds.png``: added latency at p50/p90/p99 per round, so
  drift and an odd round are visible next to the median the gate uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from meshproof.load import analysis, hist  # noqa: E402

COLORS = {"plain": "tab:blue", "mesh": "tab:red", "floor": "tab:gray"}
LABELS = {"plain": "baseline (no mesh)", "mesh": "mesh", "floor": "generator floor"}


def cdf_plot(name: str, sc: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key in ("floor", "plain", "mesh"):
        xs, ys = hist.cdf(analysis.merged(sc["rounds"], key))
        if xs:
            ax.plot([x / 1000 for x in xs], [max(1 - y, 1e-6) for y in ys],
                    color=COLORS[key], label=LABELS[key])
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yscale("log")
    ax.invert_yaxis()
    ax.set_yticks([0.5, 0.1, 0.01, 0.001, 0.0001])
    ax.set_yticklabels(["p50", "p90", "p99", "p99.9", "p99.99"])
    ax.set_xlabel("latency from intended send time (ms)")
    ax.set_title(f"{name} at {sc['rate_rps']:g} rps" + ("" if sc["valid"] else " (FLAGGED)"))
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def rounds_plot(name: str, sc: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for p, color in (("p50", "tab:green"), ("p90", "tab:orange"), ("p99", "tab:red")):
        ys = [v / 1000 for v in sc["added_us"][p]["per_round"]]
        ax.plot(range(1, len(ys) + 1), ys, "o-", color=color, label=f"added {p}")
        ax.axhline(sc["added_us"][p]["median"] / 1000, color=color, ls=":", alpha=0.6)
    ax.set_xlabel("round")
    ax.set_ylabel("mesh - baseline (ms)")
    ax.set_title(f"{name}: added latency per round (dotted: median)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_all(doc: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    out = []
    for name, sc in doc["scenarios"].items():
        out.append(cdf_plot(name, sc, out_dir / f"{stem}-{name}-cdf.png"))
        out.append(rounds_plot(name, sc, out_dir / f"{stem}-{name}-rounds.png"))
    return out
