"""Every ``meshproof`` subcommand as a user types it: a fresh process, its exit code.

An import that works only because pytest loaded the plugin first (the old
``diff`` ImportError) shows up only this way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshproof import paths
from meshproof.conformance.spec import CheckSpec
from meshproof.report.conformance import CheckResult, RunInfo, build_report
from meshproof.targets.local import netns

ROOT = Path(__file__).resolve().parents[2]
MESHPROOF = [sys.executable, "-m", "meshproof.cli"]
SUBCOMMANDS = ("conformance", "up", "down", "status", "probe", "diff", "apply", "delete", "mesh")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MESHPROOF, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_every_subcommand_has_help(sub):
    cp = run(sub, "--help")
    assert cp.returncode == 0, cp.stderr
    assert "usage: meshproof" in cp.stdout and "Traceback" not in cp.stderr


def _report(tmp_path: Path, name: str, result: str) -> Path:
    spec = CheckSpec("split-90-10", "d", ("traffic-split",), (), ())
    p = tmp_path / name
    p.write_text(yaml.safe_dump(build_report(RunInfo("reference", "local"),
                                             [CheckResult(spec, result, 1.0)])))
    return p


def test_diff_same_changed_and_malformed(tmp_path):
    a, b = _report(tmp_path, "a.yaml", "passed"), _report(tmp_path, "b.yaml", "failed")
    same = run("diff", str(a), str(a))
    assert same.returncode == 0 and "no change" in same.stdout, same.stderr
    changed = run("diff", str(a), str(b))
    assert changed.returncode == 1, changed.stderr
    assert "check split-90-10: passed -> failed" in changed.stdout
    for text in ("hello: 1\n", "kind: ConformanceReport\nprofiles: 3\n", "[" * 3000, ""):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        cp = run("diff", str(a), str(bad))
        assert cp.returncode == 2, (text[:40], cp.stdout, cp.stderr)
        assert "Traceback" not in cp.stderr
        assert "ConformanceReport" in cp.stderr or "is not YAML" in cp.stderr
    missing = run("diff", str(a), str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read report" in missing.stderr


def test_apply_dry_run_validates_without_a_lab():
    cp = run("apply", "--dry-run", "-f", "fixtures/policies/retry.yaml")
    assert cp.returncode == 0, cp.stderr
    assert '"kind": "Retry"' in cp.stdout and "nothing applied" in cp.stdout


@pytest.mark.parametrize("args,message", [
    (["--mesh", "linkerdx"], "unknown mesh 'linkerdx'"),
    (["--target", "mars"], "unknown target 'mars'"),
    (["--target", "kube", "--mesh", "istio"], "kubeconfig"),
    (["--mesh", "istio"], "cannot be installed on target 'local'"),
    (["--mesh", "reference", "--defect", "nosuch"], "unknown defect 'nosuch'"),
    (["--mesh", "none", "--defect", "authz-open"], "needs a mesh"),
    (["--reviews-replicas", "-5"], "out of range"),
    (["--reviews-replicas", "100000"], "out of range"),
])
def test_up_refuses_bad_arguments_before_creating_anything(args, message, tmp_path):
    before = _lab_state()
    # No cluster is reachable from here: the kube target must say so, naming the config.
    cp = run("up", *args, env={"KUBECONFIG": str(tmp_path / "no-such-kubeconfig")})
    assert cp.returncode == 2, cp.stdout + cp.stderr
    assert message in cp.stderr and "Traceback" not in cp.stderr
    assert _lab_state() == before


def _lab_state() -> tuple[str, ...]:
    """This instance's network namespaces and run dir: what ``up`` would create first
    (other instances' labs may come and go on the machine meanwhile)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ns = "\n".join(sorted(line for line in listed.splitlines() if line.startswith(netns.PREFIX)))
    run_dir = paths.RUN_DIR
    return (ns, str(sorted(p.name for p in run_dir.iterdir())) if run_dir.exists() else "")


def _fake(*args: str, status: int = 503) -> subprocess.CompletedProcess[str]:
    return run("conformance", *args, "--", "-p", "tests.unit.fakes", "-q",
               env={"PYTHONPATH": str(ROOT), "FAKE_STATUS": str(status)}, timeout=180)


def test_conformance_exit_codes_are_0_1_2(tmp_path):
    """0: every check that ran passed; 1: a check failed; 2: the suite could not run."""
    ok = _fake("--target", "fake", "--mesh", "fake-faults", "--tests", "fault_abort_all",
               "--reports", str(tmp_path / "ok"))
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert (tmp_path / "ok" / "conformance-report.yaml").exists()
    failed = _fake("--target", "fake", "--mesh", "fake-faults", "--tests", "fault_abort_percent",
                   "--reports", str(tmp_path / "failed"))
    assert failed.returncode == 1, failed.stdout[-2000:]
    broken = _fake("--target", "fake", "--mesh", "linkerdx", "--reports", str(tmp_path / "x"))
    assert broken.returncode == 2, broken.stdout[-2000:]
    assert "unknown mesh 'linkerdx'" in broken.stdout + broken.stderr


def test_mesh_status_without_a_control_plane_says_so(tmp_path):
    """No lab (an empty run dir): exit 2 naming the control plane and what to do."""
    cp = run("mesh", "status", env={"MESHPROOF_RUN_DIR": str(tmp_path)})
    assert cp.returncode == 2, (cp.stdout, cp.stderr)
    assert "control plane is unreachable" in cp.stderr and "--mesh reference" in cp.stderr
    assert "Traceback" not in cp.stderr
