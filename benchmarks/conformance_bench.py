#!/usr/bin/env python3
"""Benchmark of `make conformance`: wall time, bring-up vs checks, N consecutive runs,
for each way of driving the mesh, side by side.

Runs the conformance suite N times per mesh mode exactly as `make conformance`
does (`meshproof conformance` with the reports), the modes interleaved
(A B A B ...: these machines drift, only neighbours compare), and reports each
run's wall time, its bring-up and check time and the programmed waits (from
the run's ConformanceReport), and passes/failures. Writes
reports/bench/conformance.json.
Usage (root): .venv/bin/python benchmarks/conformance_bench.py [--runs 10]
              [--meshes reference,reference-blackbox]
              [--before TREE [--before-instance pb]]
``--before TREE``: also run each mesh from another worktree (the old code, with
its own ``.venv`` and its own ``MESHPROOF_INSTANCE``), interleaved with this
tree's runs, and report this tree's wall time over the old one's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from report import write_report  # benchmarks/report.py (script dir is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


def one_run(i: int, mesh: str, work: Path, tree: Path = ROOT,
            env: dict[str, str] | None = None) -> dict[str, Any]:
    reports = work / f"{mesh}-{tree.name}-{i}"
    t0 = time.monotonic()
    py = str(tree / ".venv" / "bin" / "python") if tree != ROOT else sys.executable
    cp = subprocess.run([py, "-m", "meshproof.cli", "conformance", "--mesh", mesh,
                         "--reports", str(reports), "--", "-q"],
                        cwd=tree, capture_output=True, text=True, timeout=1200,
                        env=env)
    wall = time.monotonic() - t0
    rep = reports / "conformance-report.yaml"
    doc = yaml.safe_load(rep.read_text()) if rep.exists() else {}
    stats = doc.get("profiles", [{}])[0].get("summary", {}).get("statistics", {})
    failed = doc.get("profiles", [{}])[0].get("summary", {}).get("failedTests", [])
    waits = [w for c in doc.get("checks", []) for w in c.get("programmed_s", [])]
    print(f"run {i + 1} {mesh}: exit {cp.returncode}, {wall:5.1f} s, passed "
          f"{stats.get('Passed')}, failed {stats.get('Failed')} {failed or ''}", flush=True)
    if "run" not in doc:  # could not run at all: say why, count it as a failed run
        print(cp.stdout[-1500:] + cp.stderr[-1500:], flush=True)
    run = doc.get("run", {})
    return {"exit": cp.returncode, "wall_s": wall, "bringup_s": run.get("bringup_s", 0.0),
            "checks_s": run.get("checks_s", 0.0), "passed": stats.get("Passed", 0),
            "failed": stats.get("Failed", 0), "waits": waits}


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    waits = sorted(w for r in runs for w in r["waits"])
    return {"runs": float(len(runs)),
            "runs_all_passed": float(sum(r["exit"] == 0 for r in runs)),
            "checks_failed_total": float(sum(r["failed"] for r in runs)),
            "checks_per_run": float(runs[0]["passed"] + runs[0]["failed"]),
            "wall_s_p50": statistics.median(r["wall_s"] for r in runs),
            "wall_s_max": max(r["wall_s"] for r in runs),
            "bringup_s_p50": statistics.median(r["bringup_s"] for r in runs),
            "checks_s_p50": statistics.median(r["checks_s"] for r in runs),
            "programmed_wait_ms_p50": 1000 * (statistics.median(waits) if waits else 0.0),
            "programmed_wait_ms_max": 1000 * (max(waits) if waits else 0.0)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--meshes", default="reference,reference-blackbox")
    ap.add_argument("--before", type=Path, default=None)
    ap.add_argument("--before-instance", default="pb")
    args = ap.parse_args()
    meshes = [m for m in args.meshes.split(",") if m]
    by_mesh: dict[str, list[dict[str, Any]]] = {m: [] for m in meshes}
    before: dict[str, list[dict[str, Any]]] = {m: [] for m in meshes}
    old_env = {**os.environ, "MESHPROOF_INSTANCE": args.before_instance}
    with tempfile.TemporaryDirectory(prefix="mp-confbench-") as d:
        for i in range(args.runs):
            for m in meshes:  # interleaved: neighbours share the machine's mood
                if args.before and i % 2:
                    by_mesh[m].append(one_run(i, m, Path(d)))
                if args.before:
                    print("  (before)", end=" ", flush=True)
                    before[m].append(one_run(i, m, Path(d), args.before.resolve(), old_env))
                if not (args.before and i % 2):
                    by_mesh[m].append(one_run(i, m, Path(d)))
    out: dict[str, float] = {}
    for m, runs in by_mesh.items():
        out.update({f"{m}.{k}": v for k, v in summarise(runs).items()})
        if before[m]:
            out.update({f"before.{m}.{k}": v for k, v in summarise(before[m]).items()})
            out[f"{m}.wall_ratio_after_over_before"] = \
                out[f"{m}.wall_s_p50"] / out[f"before.{m}.wall_s_p50"]
    if len(meshes) == 2:
        a, b = meshes
        out[f"wall_ratio_{b}_over_{a}"] = out[f"{b}.wall_s_p50"] / out[f"{a}.wall_s_p50"]
    write_report("conformance", out)
    return 0 if all(out[f"{m}.runs_all_passed"] == out[f"{m}.runs"] for m in meshes) else 1


if __name__ == "__main__":
    sys.exit(main())
