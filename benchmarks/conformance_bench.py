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
              [--meshes reference,reference-blackbox] [--burners 2 --burn-every 2]
              [--without EXPR]

``--without EXPR`` adds, per mesh, a run of the suite without the checks a pytest
``-k`` EXPR selects (e.g. ``test_protocols``), interleaved with the full one: what
those checks add to ``make conformance`` is the difference of neighbours, and the
sum of their own durations (from the full runs' reports) is shown beside it.

``--burners K --burn-every M``: every M-th run (runs M-1, 2M-1, ...) has K
CPU-burning processes beside it (each bounded by ``timeout``), so loaded and
quiet runs interleave. Every run's judgements give each check's margin to its
bound (benchmarks/margins.py); the narrowest per check over all runs, and the
run it came from, go to reports/bench/conformance-margins.json, rewritten
after every run so a benchmark stopped early still reports what ran.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from margins import narrowest, report_margins  # benchmarks/margins.py
from report import write_report  # benchmarks/report.py (script dir is on sys.path)

ROOT = Path(__file__).resolve().parents[1]


#: A burner's own bound (s): it dies by itself even if the benchmark is killed.
BURNER_MAX_S = 1800


def burners(k: int) -> list[subprocess.Popen[bytes]]:
    """K busy loops, each bounding itself (no ``timeout`` wrapper: killing the wrapper
    left its child spinning, which is how a first version leaked burners)."""
    loop = f"import time\nend = time.monotonic() + {BURNER_MAX_S}\nwhile time.monotonic() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(k)]


def one_run(i: int, mesh: str, work: Path, burn: int = 0, without: str = "") -> dict[str, Any]:
    reports = work / f"{mesh}-{'without-' if without else ''}{i}"
    t0 = time.monotonic()
    hot = burners(burn)
    try:
        cp = _conformance(mesh, reports, ["--tests", f"not ({without})"] if without else [])
    finally:
        for b in hot:
            b.kill()
            b.wait()
    result = _result(i, mesh, reports, cp, time.monotonic() - t0, burn)
    if result["exit"] != 0:
        keep_evidence(reports, cp)
    return result


#: Where a failed run's reports are kept (the temp dir goes at the end): a false fail
#: is investigated from its evidence, never by re-running until it passes.
KEPT = ROOT / "reports" / "bench" / "failed"


def keep_evidence(reports: Path, cp: subprocess.CompletedProcess[str]) -> None:
    """Copy a failed run's report, JUnit file, Allure results (the mesh's evidence is
    attached there: config dumps, stats) and output under reports/bench/failed/."""
    import shutil

    dest = KEPT / f"{time.strftime('%Y%m%dT%H%M%S')}-{reports.name}"
    dest.mkdir(parents=True, exist_ok=True)
    if (reports / "allure-results").is_dir():
        shutil.copytree(reports / "allure-results", dest / "allure-results", dirs_exist_ok=True)
    for name in ("conformance-report.yaml", "junit.xml"):
        if (reports / name).exists():
            shutil.copy2(reports / name, dest / name)
    (dest / "output.txt").write_text(cp.stdout + "\n--- stderr ---\n" + cp.stderr)
    print(f"  evidence kept in {dest.relative_to(ROOT)}", flush=True)


def _conformance(mesh: str, reports: Path, tests: list[str]
                 ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshproof.cli", "conformance", "--mesh", mesh,
                         "--reports", str(reports), *tests, "--", "-q"],
                        cwd=ROOT, capture_output=True, text=True, timeout=1200)


def _result(i: int, mesh: str, reports: Path, cp: subprocess.CompletedProcess[str],
            wall: float, burn: int) -> dict[str, Any]:
    rep = reports / "conformance-report.yaml"
    doc = yaml.safe_load(rep.read_text()) if rep.exists() else {}
    stats = doc.get("profiles", [{}])[0].get("summary", {}).get("statistics", {})
    failed = doc.get("profiles", [{}])[0].get("summary", {}).get("failedTests", [])
    waits = [w for c in doc.get("checks", []) for w in c.get("programmed_s", [])]
    print(f"run {i + 1} {mesh}{' +%d burners' % burn if burn else ''}: exit "
          f"{cp.returncode}, {wall:5.1f} s, passed "
          f"{stats.get('Passed')}, failed {stats.get('Failed')} {failed or ''}", flush=True)
    if "run" not in doc:  # could not run at all: say why, count it as a failed run
        print(cp.stdout[-1500:] + cp.stderr[-1500:], flush=True)
    run = doc.get("run", {})
    return {"exit": cp.returncode, "wall_s": wall, "bringup_s": run.get("bringup_s", 0.0),
            "checks_s": run.get("checks_s", 0.0), "passed": stats.get("Passed", 0),
            "failed": stats.get("Failed", 0), "failed_checks": failed, "waits": waits,
            "burners": burn, "margins": report_margins(doc),
            "durations": {c["name"]: c.get("duration_s", 0.0) for c in doc.get("checks", [])}}


def write_margins(by_mesh: dict[str, list[dict[str, Any]]]) -> Path:
    """The narrowest margin per check and judgement, per mesh and load (rewritten each run)."""
    import json

    out: dict[str, Any] = {}
    for m, runs in by_mesh.items():
        for load, sel in (("quiet", [r for r in runs if not r["burners"]]),
                          ("burners", [r for r in runs if r["burners"]])):
            if sel:
                out[f"{m}/{load}"] = {
                    "runs": len(sel), "failed_checks": sum(r["failed"] for r in sel),
                    "failures": [f for r in sel for f in r["failed_checks"]],
                    "narrowest": narrowest([r["margins"] for r in sel])}
    path = Path("reports/bench/conformance-margins.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    return path


def print_margins(path: Path) -> None:
    import json

    for group, g in json.loads(path.read_text()).items():
        print(f"narrowest margins, {group} ({g['runs']} runs, {g['failed_checks']} failed "
              "checks):")
        for key, m in g["narrowest"].items():
            print(f"  {key[:90]:<90} observed {m['observed']} bound {m['bound']} "
                  f"margin {m['margin']} {m['unit']} (run {m['run']})")


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
    ap.add_argument("--burners", type=int, default=0, help="CPU burners beside loaded runs")
    ap.add_argument("--burn-every", type=int, default=2, help="every Nth run is loaded")
    ap.add_argument("--without", default="", metavar="EXPR",
                    help="also run each mesh without the checks this -k EXPR selects")
    args = ap.parse_args()
    meshes = [m for m in args.meshes.split(",") if m]
    by_mesh: dict[str, list[dict[str, Any]]] = {m: [] for m in meshes}
    without: dict[str, list[dict[str, Any]]] = {m: [] for m in meshes}
    with tempfile.TemporaryDirectory(prefix="mp-confbench-") as d:
        for i in range(args.runs):
            burn = args.burners if args.burners and i % args.burn_every == args.burn_every - 1 else 0
            for m in meshes:  # interleaved: neighbours share the machine's mood
                by_mesh[m].append(one_run(i, m, Path(d), burn))
                if args.without:
                    without[m].append(one_run(i, m, Path(d), burn, args.without))
            margins = write_margins(by_mesh)
    print_margins(margins)
    out: dict[str, float] = {}
    for m, runs in by_mesh.items():
        out.update({f"{m}.{k}": v for k, v in summarise(runs).items()})
        if args.without:
            rest = without[m]
            out.update({f"{m}.without.{k}": v for k, v in summarise(rest).items()})
            out[f"{m}.added_wall_s_p50"] = statistics.median(
                a["wall_s"] - b["wall_s"] for a, b in zip(runs, rest))
            left = {n for r in rest for n in r["durations"]}
            out[f"{m}.added_checks_s_p50"] = statistics.median(
                sum(v for n, v in r["durations"].items() if n not in left) for r in runs)
    if len(meshes) == 2:
        a, b = meshes
        out[f"wall_ratio_{b}_over_{a}"] = out[f"{b}.wall_s_p50"] / out[f"{a}.wall_s_p50"]
    write_report("conformance", out)
    return 0 if all(out[f"{m}.runs_all_passed"] == out[f"{m}.runs"] for m in meshes) else 1


if __name__ == "__main__":
    sys.exit(main())
