"""``meshproof chaos`` / ``make chaos``: bring up a lab, run every experiment, summarise.

Exit codes as conformance: 0 every experiment passed, 1 one failed, 2 the
suite could not run (target or mesh unusable, unknown names).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from meshproof import registry
from meshproof.chaos import runner
from meshproof.errors import ConfigError, MeshproofError


def _line(msg: str) -> None:
    if sys.stdout.isatty():
        sys.stdout.write("\r\033[K" + msg[:150])
    else:
        sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def run_suite(target: str = "local", mesh: str = "reference", defect: str = "",
              tests: str = "", reports: str = "reports",
              allow_component_outage: bool = False, fail_fast: bool = False) -> int:
    files = runner.experiment_files(tests)
    if not files:
        raise ConfigError(f"no chaos experiment matches {tests!r}",
                          f"experiments: {', '.join(f.stem for f in runner.experiment_files())}")
    if target != "local" and not allow_component_outage:
        skipped = [f.stem for f in files if runner.takes_down_components(f)]
        files = [f for f in files if not runner.takes_down_components(f)]
        for s in skipped:
            print(f"SKIP  {s}: takes down mesh components; on target {target!r} only with "
                  "--allow-component-outage")
    import os

    if allow_component_outage:  # the kube target reads the opt-in from its settings
        os.environ["MESHPROOF_ALLOW_COMPONENT_OUTAGE"] = "1"
    os.environ["MESHPROOF_MESH"] = mesh
    os.environ["MESHPROOF_TARGET"] = target
    os.environ["MESHPROOF_DEFECT"] = defect
    t0 = time.monotonic()
    lab = registry.start_target(target, mesh, defect,
                                progress=lambda m, d, n: _line(f"up [{d}/{n}] {m}"))
    up_s = time.monotonic() - t0
    _line(f"lab up in {up_s:.1f} s")
    print()
    results: list[runner.Result] = []
    runner.clear_allure(Path(reports))
    try:
        for i, f in enumerate(files, 1):
            results.append(runner.run(f, Path(reports), say=lambda m, i=i: _line(
                f"[{i}/{len(files)}] {m}"), fail_fast=fail_fast))
            _line(f"[{i}/{len(files)}] {f.stem}: {'PASS' if results[-1].passed else 'FAIL'}")
            print()
    finally:
        lab.down()
    print_summary(results, up_s, time.monotonic() - t0, defect)
    return 0 if all(r.passed for r in results) else 1


def print_summary(results: list[runner.Result], up_s: float, wall_s: float,
                  defect: str = "") -> None:
    cols = ("before", "during", "method", "after", "rollbacks")
    print(f"{'experiment':24} {'verdict':7} " + " ".join(f"{c:9}" for c in cols)
          + f" {'time':>6}  catches")
    for r in results:
        print(f"{r.name:24} {'PASS' if r.passed else 'FAIL':7} "
              + " ".join(f"{r.phases.get(c, '-'):9}" for c in cols)
              + f" {r.duration_s:5.1f}s  {', '.join(r.catches)}")
        for n in r.notes:
            print(f"    {n}")
    passed = sum(r.passed for r in results)
    print(f"experiments: {passed} passed, {len(results) - passed} failed"
          + (f" (defect {defect})" if defect else "")
          + f"; lab up {up_s:.1f} s, wall {wall_s:.1f} s; journals: reports/chaos/")


def main_args(args: Any) -> int:
    try:
        return run_suite(args.target, args.mesh, args.defect, args.tests, args.reports,
                         args.allow_component_outage, getattr(args, "fail_fast", False))
    except MeshproofError as exc:
        print(f"meshproof: {exc}", file=sys.stderr)
        return 2
