"""Experiments against the defects they declare (each defect its own lab), the full
matrix under ``slow``, and SIGKILL mid-fault followed by the lab's teardown. Its own
module: the module-scoped lab of test_experiments.py must be down first (one lab per
machine: a second start would queue behind it)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from meshproof.chaos import ledger, runner
from tests.chaos.test_experiments import (FILES, DECLARED, _chaos_run, _lab,
                                          _wait_for_fault, assert_nothing_in_place)
from tests.conftest import needs_root

pytestmark = [pytest.mark.lab, pytest.mark.mesh, needs_root]


def _defect_run(defect: str, names: list[str], tmp_path: Path) -> dict[str, runner.Result]:
    out = {}
    for t in _lab(defect):
        for n in names:
            out[n] = runner.run(FILES[n], tmp_path)
            assert_nothing_in_place(t)
    return out


@pytest.mark.parametrize("defect", sorted({d for d, _ in DECLARED}))
def test_fails_against_each_declared_defect(defect, tmp_path) -> None:
    names = [n for d, n in DECLARED if d == defect]
    for n, r in _defect_run(defect, names, tmp_path).items():
        assert not r.passed, (n, r.phases)
        assert r.phases["before"] == "PASS" and r.phases["during"] == "FAIL", (n, r.phases)
        assert r.phases["rollbacks"] == "PASS", (n, r.phases)


@pytest.mark.slow
@pytest.mark.parametrize("defect", sorted(IMPL := __import__(
    "meshproof.mesh.defects", fromlist=["IMPLEMENTED"]).IMPLEMENTED))
def test_full_matrix(defect, tmp_path) -> None:
    """Each experiment fails under the defects it declares and passes under every other."""
    for n, r in _defect_run(defect, sorted(FILES), tmp_path).items():
        assert r.passed == (defect not in r.catches), (n, defect, r.phases, r.notes)


def test_sigkill_mid_fault_then_down_leaves_nothing(tmp_path) -> None:
    from meshproof.targets.local import cleanup

    for t in _lab():
        proc = _chaos_run("timeout-blackhole", tmp_path / "journal.json")
        _wait_for_fault(proc, "toxiproxy")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert ledger.entries()
        ledger.undo_all()  # what `meshproof down`'s sweep does first while the lab runs
        assert_nothing_in_place(t)
    assert not ledger.LEDGER.exists()
    assert cleanup.count(cleanup.leftovers()) == 0
