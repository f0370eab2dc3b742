"""Experiments against the defects they declare that cannot be switched on in a running
lab (an agent's or the CA's flags: each its own lab, through `meshproof chaos`), the full matrix under ``slow`` (a lab
per defect, xDS ones included), and SIGKILL mid-fault followed by the lab's teardown.
Its own module: the module-scoped lab of test_experiments.py must be down first (one
lab per instance: a second start would queue behind it)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from meshproof.chaos import ledger, runner
from tests.chaos.test_experiments import (DECLARED, FILES, LIVE_DECLARED, _chaos_run, _lab,
                                          _wait_for_fault, assert_fails_as_negative_control,
                                          assert_nothing_in_place)
from tests.conftest import needs_root

pytestmark = [pytest.mark.lab, pytest.mark.mesh, needs_root]


def _defect_run(defect: str, names: list[str], tmp_path: Path, fail_fast: bool = False
                ) -> dict[str, runner.Result]:
    out = {}
    for t in _lab(defect):
        for n in names:
            out[n] = runner.run(FILES[n], tmp_path, fail_fast=fail_fast)
            assert_nothing_in_place(t)
    return out


@pytest.mark.parametrize("defect", sorted({d for d, _ in DECLARED} - set(LIVE_DECLARED)))
def test_fails_against_each_declared_defect_in_its_own_lab(defect, tmp_path) -> None:
    """Through the command a user types, in a fresh process: `meshproof chaos --defect D
    --tests NAMES --fail-fast` exits 1, each journal failing where it looks."""
    import json
    import subprocess
    import sys

    from meshproof.chaos.runner import Result

    names = [n for d, n in DECLARED if d == defect]
    cp = subprocess.run([sys.executable, "-m", "meshproof.cli", "chaos", "--defect", defect,
                         "--tests", ",".join(names), "--reports", str(tmp_path),
                         "--fail-fast"], capture_output=True, text=True, timeout=600)
    assert cp.returncode == 1, cp.stdout[-3000:] + cp.stderr[-2000:]
    for n in names:
        j = json.loads((tmp_path / "chaos" / f"{n}.json").read_text())
        assert j["meshproof"]["defect"] == defect
        r = Result(n, j["experiment"]["title"], j["meshproof"]["catches"],
                   j["meshproof"]["phases"], 0.0)
        assert_fails_as_negative_control(n, r)
        assert not j["meshproof"]["left_in_place_after_rollbacks"], j["meshproof"]
        assert list((tmp_path / "allure-results").glob("*-result.json"))
    assert f"(defect {defect})" in cp.stdout and "0 passed" in cp.stdout, cp.stdout


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(IMPL := __import__(
    "meshproof.mesh.defects", fromlist=["IMPLEMENTED"]).IMPLEMENTED))
def test_full_matrix(defect, tmp_path) -> None:
    """Each experiment fails under the defects it declares and passes under every other."""
    for n, r in _defect_run(defect, sorted(FILES), tmp_path).items():
        if defect in r.catches:
            assert_fails_as_negative_control(n, r)
        else:
            assert r.passed, (n, defect, r.phases, r.notes)


@pytest.mark.slow  # nightly: a lab of its own
def test_sigkill_mid_fault_then_down_leaves_nothing(tmp_path) -> None:
    """`meshproof down` (a fresh process, as typed) after a runner was SIGKILLed with a
    toxiproxy, its redirect and a Timeout in place: exit 0, and nothing of the lab or
    the fault is left (no ledger, no process, no namespace)."""
    import subprocess
    import sys

    from meshproof.targets.local import cleanup

    for _t in _lab():
        proc = _chaos_run("timeout-blackhole", tmp_path / "journal.json")
        _wait_for_fault(proc, "toxiproxy")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert ledger.entries()
        cp = subprocess.run([sys.executable, "-m", "meshproof.cli", "down"],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stdout + cp.stderr
    assert not ledger.LEDGER.exists()
    assert cleanup.count(cleanup.leftovers()) == 0
    assert not [p for p in cleanup.owned_pids()], "a toxiproxy or pod process survived"
