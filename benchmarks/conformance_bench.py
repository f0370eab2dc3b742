#!/usr/bin/env python3
"""Benchmark of `make conformance`: wall time, bring-up vs checks, N consecutive runs.

Runs the conformance suite N times exactly as `make conformance` does
(pytest with the reports), one after the other, and reports each run's wall
time, its bring-up and check time (from the run's ConformanceReport), and
passes/failures. Writes reports/bench/conformance.json.
Usage (root): .venv/bin/python benchmarks/conformance_bench.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from report import write_report  # benchmarks/report.py (script dir is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def one_run(i: int, work: Path) -> dict[str, float]:
    rep = work / f"run-{i}.yaml"
    t0 = time.monotonic()
    cp = subprocess.run([sys.executable, "-m", "pytest", "conformance", "-q", "-p",
                         "no:cacheprovider", f"--junitxml={work / f'junit-{i}.xml'}",
                         f"--alluredir={work / f'allure-{i}'}", f"--conformance-report={rep}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=1200)
    wall = time.monotonic() - t0
    doc = yaml.safe_load(rep.read_text()) if rep.exists() else {}
    stats = doc.get("profiles", [{}])[0].get("summary", {}).get("statistics", {})
    failed = doc.get("profiles", [{}])[0].get("summary", {}).get("failedTests", [])
    print(f"run {i + 1}: exit {cp.returncode}, {wall:5.1f} s, passed {stats.get('Passed')}, "
          f"failed {stats.get('Failed')} {failed or ''}", flush=True)
    return {"exit": cp.returncode, "wall_s": wall, "bringup_s": doc["run"]["bringup_s"],
            "checks_s": doc["run"]["checks_s"], "passed": stats.get("Passed", 0),
            "failed": stats.get("Failed", 0)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mp-confbench-") as d:
        runs = [one_run(i, Path(d)) for i in range(args.runs)]
    out = {"runs": float(len(runs)),
           "runs_all_passed": float(sum(r["exit"] == 0 for r in runs)),
           "checks_failed_total": float(sum(r["failed"] for r in runs)),
           "checks_per_run": float(runs[0]["passed"] + runs[0]["failed"]),
           "wall_s_p50": statistics.median(r["wall_s"] for r in runs),
           "wall_s_max": max(r["wall_s"] for r in runs),
           "bringup_s_p50": statistics.median(r["bringup_s"] for r in runs),
           "checks_s_p50": statistics.median(r["checks_s"] for r in runs)}
    write_report("conformance", out)
    return 0 if out["runs_all_passed"] == out["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
