"""The documented GitHub Actions recipes (docs/ci/) validate against the GitHub workflow
JSON schema (check-jsonschema's built-in copy: offline) and run what the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from meshproof import paths

CI = paths.ROOT / "docs" / "ci"
CHECK = str(Path(sys.executable).parent / "check-jsonschema")
RECIPES = sorted(CI.glob("*.yml"))


def test_both_recipes_exist():
    assert {p.name for p in RECIPES} == {"nightly-kube-istio.yml", "nightly-embedded.yml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_valid_github_workflow(path):
    p = subprocess.run([CHECK, "--builtin-schema", "vendor.github-workflows", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def test_schema_check_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
                   "    steps:\n      - uses: actions/checkout@v4\n        runn: oops\n")
    p = subprocess.run([CHECK, "--builtin-schema", "vendor.github-workflows", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1


def _runs(path):
    wf = yaml.safe_load(path.read_text())
    return [s for job in wf["jobs"].values() for s in job["steps"]]


def test_kube_recipe_runs_conformance_and_publishes_both_reports():
    steps = _runs(CI / "nightly-kube-istio.yml")
    text = " ".join(str(s.get("run", "")) for s in steps)
    assert "make conformance TARGET=kube MESH=istio" in text
    assert "istioctl" in text and any("kind-action" in str(s.get("uses")) for s in steps)
    paths_ = " ".join(str(s.get("with", {}).get("path", "")) for s in steps)
    assert "reports/allure-report/" in paths_ and "reports/conformance-report.yaml" in paths_
    assert all(s.get("if") == "always()" for s in steps if "upload-artifact" in
               str(s.get("uses")))


def test_embedded_recipe_runs_sudo_make_conformance():
    steps = _runs(CI / "nightly-embedded.yml")
    assert any("sudo" in str(s.get("run")) and "make conformance" in str(s.get("run"))
               for s in steps)
