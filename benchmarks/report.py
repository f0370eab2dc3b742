"""Shared output of the benchmarks: a two-column table and reports/bench/NAME.json."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(name: str, figures: dict[str, float]) -> Path:
    dest = Path("reports/bench")
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}.json"
    path.write_text(json.dumps(figures, indent=1))
    width = max(map(len, figures))
    for k, v in figures.items():
        print(f"{k:<{width}}  {v:10.2f}")
    print(f"written: {path}")
    return path
