"""The pytest plugin's options: listing, selection, gating, exit codes (no lab needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pytest_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "conformance", "-p",
                           "no:cacheprovider", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_list_checks_names_features_and_defects():
    cp = pytest_run("--list-checks")
    assert cp.returncode == 0, cp.stderr
    assert "split-90-10" in cp.stdout and "catches: weights-ignored" in cp.stdout
    assert "mtls-strict-refuses-plaintext" in cp.stdout


def test_catching_selects_only_the_declaring_checks():
    cp = pytest_run("--collect-only", "-q", "--catching", "match-ignored")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    tests = [ln for ln in cp.stdout.splitlines() if "::" in ln]
    assert tests and all("match" in t for t in tests), tests


def test_unknown_feature_is_a_usage_error():
    cp = pytest_run("--collect-only", "--exempt-features", "teleportation")
    assert cp.returncode == 4  # pytest's usage error
    assert "unknown feature 'teleportation'" in cp.stderr


def test_unknown_mesh_exits_2():
    cp = pytest_run("-k", "split_100_0", "--mesh", "linkerdx")
    assert cp.returncode == 2, cp.stdout + cp.stderr
    assert "unknown mesh 'linkerdx'" in cp.stdout + cp.stderr


def test_unknown_defect_exits_2():
    cp = pytest_run("-k", "split_100_0", "--mesh-defect", "gremlins")
    assert cp.returncode == 2, cp.stdout + cp.stderr
    assert "unknown defect 'gremlins'" in cp.stdout + cp.stderr
