"""The experiment files: valid Chaos Toolkit, tolerances derived from the policy, defects
declared and implemented, rollbacks that undo the ledger (no lab needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from meshproof.chaos import runner
from meshproof.mesh.defects import DEFECTS, IMPLEMENTED
from meshproof.verdict.stats import design, prob_between

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
    """Timing bounds are (N+1) x T + slack (T the per-try timeout when there are retries),
    with T and N the policy the method applies; success counts are binomial designs."""
    doc = yaml.safe_load(path.read_text())
    tol = runner.meta(path)["tolerances"]
    probes = doc["steady-state-hypothesis"]["probes"]
    policies = "".join(a["provider"]["arguments"].get("policy", "") for a in doc["method"]
                       if a["provider"]["func"] == "apply_policy")
    bounds = set()
    if "timeout_ms" in tol.get("policy", {}):
        t, n = tol["policy"]["timeout_ms"], tol["policy"]["retries"]
        bound = (n + 1) * t + tol["slack_ms"]
        assert tol["max_latency_ms"] == bound
        if n:
            assert f"retries: {n}," in policies and f"perTryTimeout: {t}ms" in policies
        else:
            assert f"timeout: {t}ms" in policies
        bounds.add(bound)
    if "bandwidth" in tol:  # the body cannot cross the link within the bound
        bw = tol["bandwidth"]
        rate = bw["rate_kb_per_s"]  # KB/s = bytes/ms
        assert bw["transfer_ms"] == bw["body_bytes"] / rate > tol["max_latency_ms"]
        assert f"rate: {rate}" in path.read_text()
        for p in probes:
            assert p["provider"]["arguments"]["body_bytes"] == bw["body_bytes"]
    for p in probes:
        args = p["provider"]["arguments"]
        if p["provider"]["func"] == "bounded_count":
            assert args["max_latency_ms"] in bounds and p["tolerance"] == args["count"]
    for key in ("serving", "positive_control", "retried", "observer"):
        if key in tol:
            d = design(tol[key]["expected"], tol[key]["margin"])
            assert (d.n, [d.lo, d.hi]) == (tol[key]["n"], tol[key]["pass_band"])
            assert d.beta <= 1e-4 and abs(d.beta - tol[key]["beta"]) < 1e-6
            counted = [p for p in probes if p["provider"]["func"] in ("success_count",
                                                                       "bounded_count")]
            assert counted
            if key != "observer":
                for p in counted:
                    assert p["provider"]["arguments"]["count"] == d.n == p["tolerance"]
            else:  # the method's wait_serving: that many in a row
                waits = [a for a in doc["method"] if a["provider"]["func"] == "wait_serving"]
                assert waits[0]["provider"]["arguments"]["consecutive"] == d.n
    if "ejection" in tol:  # at most max_errors of n fail; a mesh failing 1 in 3 passes rarely
        e, k = tol["ejection"], tol["max_errors"]
        assert k == tol["policy"]["consecutive_5xx"] + tol["policy"]["concurrency"] - 1
        assert e["pass_band"] == [e["n"] - k, e["n"]]
        beta = prob_between(e["n"], 1 - e["defect_error_rate"], e["n"] - k, e["n"])
        assert beta <= 1e-4 and abs(beta - e["beta"]) < 1e-6
        (p,) = probes
        assert p["tolerance"] == e["pass_band"] and p["provider"]["arguments"]["count"] == e["n"]
        assert p["provider"]["arguments"]["concurrency"] == tol["policy"]["concurrency"]
        assert f"consecutive5xx: {tol['policy']['consecutive_5xx']}" in policies
        check = next(a for a in doc["method"]
                     if a["provider"]["func"] == "expect_errors_at_most")
        assert check["provider"]["arguments"]["max_errors"] == k


def test_discover_lists_the_activities() -> None:
    from meshproof.chaos import discover

    names = {a["name"] for a in discover()["activities"]}
    assert {"add_toxic", "stop_sidecar", "stop_component", "block", "kill_pod",
            "apply_policy", "success_count", "bounded_count", "latency_quantile_ms",
            "programmed"} <= names


def test_chaos_cli_validates_every_file() -> None:
    """The `chaos` CLI (chaostoolkit) reads the files and finds the extension: its
    `validate` command for every file, in one fresh process (each start imports
    chaostoolkit, ~1.5 s)."""
    code = ("import sys\n"
            "from chaostoolkit.__main__ import cli\n"
            "for f in sys.argv[1:]:\n"
            "    rc = cli.main(['--no-log-file', 'validate', f], standalone_mode=False)\n"
            # click returns ctx.exit's code on failure, the experiment on success
            "    if isinstance(rc, int) and rc: print('INVALID', f); sys.exit(1)\n"
            "    print('VALID', f)\n")
    cp = subprocess.run([sys.executable, "-c", code, *map(str, FILES)],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert cp.stdout.count("VALID ") == len(FILES), cp.stdout
