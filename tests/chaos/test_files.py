"""The experiment files: valid Chaos Toolkit, tolerances derived from the policy, defects
declared and implemented, rollbacks that undo the ledger (no lab needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from meshproof.chaos import runner
from meshproof.mesh.defects import DEFECTS, IMPLEMENTED
from meshproof.verdict.stats import design

FILES = runner.experiment_files()


def test_there_are_experiments() -> None:
    assert len(FILES) >= 4


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_valid_chaos_toolkit_experiment(path) -> None:
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    exp = load_experiment(str(path))
    ensure_experiment_is_valid(exp)
    assert exp["title"] and exp["description"] and exp["steady-state-hypothesis"]["probes"]
    assert any(r["provider"]["func"] == "undo_ledger" for r in exp["rollbacks"])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_declares_implemented_defects(path) -> None:
    catches = runner.meta(path)["catches"]
    assert catches and set(catches) <= set(DEFECTS) and set(catches) <= IMPLEMENTED


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_tolerances_follow_from_the_policy(path) -> None:
    """Timing bounds are (N+1) x T + slack; success counts are the binomial design's band."""
    doc = yaml.safe_load(path.read_text())
    tol = runner.meta(path)["tolerances"]
    probes = doc["steady-state-hypothesis"]["probes"]
    if "policy" in tol:
        bound = (tol["policy"]["retries"] + 1) * tol["policy"]["timeout_ms"] + tol["slack_ms"]
        assert tol["max_latency_ms"] == bound
        timeout = next(a for a in doc["method"] if a["provider"]["func"] == "apply_policy")
        assert f"timeout: {tol['policy']['timeout_ms']}ms" in timeout["provider"]["arguments"]["policy"]
        for p in probes:
            args = p["provider"]["arguments"]
            assert args["max_latency_ms"] == bound and p["tolerance"] == args["count"]
    for key in ("serving", "positive_control"):
        if key in tol:
            d = design(tol[key]["expected"], tol[key]["margin"])
            assert (d.n, [d.lo, d.hi]) == (tol[key]["n"], tol[key]["pass_band"])
            assert d.beta <= 1e-4 and abs(d.beta - tol[key]["beta"]) < 1e-6
            for p in probes:
                if p["provider"]["func"] == "success_count":
                    assert p["provider"]["arguments"]["count"] == d.n == p["tolerance"]


def test_discover_lists_the_activities() -> None:
    from meshproof.chaos import discover

    names = {a["name"] for a in discover()["activities"]}
    assert {"add_toxic", "stop_sidecar", "stop_component", "block", "kill_pod",
            "apply_policy", "success_count", "bounded_count", "latency_quantile_ms",
            "programmed"} <= names


def test_chaos_cli_validates_every_file() -> None:
    """The `chaos` CLI (chaostoolkit) reads the files and finds the extension."""
    chaos = [sys.executable, "-c", "import sys; from chaostoolkit.__main__ import cli; "
             "sys.exit(cli())"]
    for f in FILES:
        cp = subprocess.run(chaos + ["--no-log-file", "validate", str(f)],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stdout + cp.stderr
