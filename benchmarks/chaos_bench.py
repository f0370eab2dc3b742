#!/usr/bin/env python3
"""Benchmark of `make chaos`: the whole suite's wall time and each experiment's duration.

Runs `meshproof chaos` (what `make chaos` runs, without the Allure HTML step)
in a fresh process, times it, and reads each experiment's duration and verdict
from the summary it prints and its journal (`reports/chaos/NAME.json`). The
machine's 1-minute load average before and after goes into the report: these
machines are shared, and a figure means little without it. Not a timed test:
nothing here passes or fails on a duration. Writes reports/bench/chaos.json.
Usage (root): MESHPROOF_INSTANCE=ID .venv/bin/python benchmarks/chaos_bench.py
              [--tests NAMES]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import write_report  # benchmarks/report.py (script dir is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tests", default="", help="experiment names (substrings), default all")
    args = ap.parse_args()
    reports = Path(tempfile.mkdtemp(prefix="chaos-bench-"))
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    cp = subprocess.run([sys.executable, "-m", "meshproof.cli", "chaos", "--reports",
                         str(reports), *(["--tests", args.tests] if args.tests else [])],
                        cwd=ROOT, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    print(cp.stdout[-4000:], cp.stderr[-2000:], sep="\n")
    figures: dict[str, float] = {"wall_s": wall, "exit_code": float(cp.returncode),
                                 "load_avg_1m_before": load_before,
                                 "load_avg_1m_after": os.getloadavg()[0]}
    m = re.search(r"lab up ([\d.]+) s", cp.stdout)
    if m:
        figures["lab_up_s"] = float(m.group(1))
    for j in sorted((reports / "chaos").glob("*.json")):
        doc = json.loads(j.read_text())
        mp = doc.get("meshproof") or {}
        figures[f"{j.stem}_s"] = float(doc.get("duration") or 0.0)
        figures[f"{j.stem}_passed"] = float(all(v == "PASS" for v in
                                                (mp.get("phases") or {}).values()))
    write_report("chaos", figures)
    return cp.returncode


if __name__ == "__main__":
    sys.exit(main())
