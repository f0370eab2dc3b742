"""`meshproof chaos` in a fresh process, without a lab: bad names and the opt-in for
component outages on a target that is not the local lab (exit 2, nothing created)."""

from __future__ import annotations

import os
import subprocess
import sys

from meshproof.chaos import runner

CMD = [sys.executable, "-m", "meshproof.cli", "chaos"]
DOWN = sorted(f.stem for f in runner.experiment_files() if runner.takes_down_components(f))


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_unknown_experiment_exits_2_naming_the_experiments() -> None:
    cp = _run("--tests", "no-such-experiment")
    assert cp.returncode == 2
    assert "no chaos experiment matches 'no-such-experiment'" in cp.stderr
    assert "partition-heal" in cp.stderr


def test_component_outages_need_the_opt_in_off_the_local_lab(tmp_path) -> None:
    """On the kube target the experiments that take down mesh components are skipped
    (named) without --allow-component-outage; with it they are not; either way no
    cluster answers here, so it exits 2 naming the kubeconfig."""
    assert {"controlplane-outage", "sidecar-crash"} <= set(DOWN)
    env = {"MESHPROOF_KUBECONFIG": str(tmp_path / "missing-kubeconfig"),
           "MESHPROOF_ALLOW_COMPONENT_OUTAGE": ""}
    cp = _run("--target", "kube", "--mesh", "istio", "--reports", str(tmp_path), **env)
    assert cp.returncode == 2, cp.stdout + cp.stderr
    for name in DOWN:
        assert f"SKIP  {name}: takes down mesh components" in cp.stdout
    assert "kubeconfig" in cp.stderr
    cp = _run("--target", "kube", "--mesh", "istio", "--reports", str(tmp_path),
              "--allow-component-outage", **env)
    assert cp.returncode == 2 and "SKIP" not in cp.stdout, cp.stdout + cp.stderr
