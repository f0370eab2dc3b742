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


def declaring(defect: str) -> set[str]:
    """Node ids of the conformance check functions whose spec declares ``defect``."""
    import importlib

    out = set()
    for f in sorted((ROOT / "conformance").glob("test_*.py")):
        mod = importlib.import_module(f"conformance.{f.stem}")
        for name, fn in vars(mod).items():
            for m in getattr(fn, "pytestmark", []):
                if name.startswith("test_") and m.name == "conformance" \
                        and defect in m.args[0].catches:
                    out.add(f"conformance/{f.name}::{name}")
    return out


def test_catching_selects_only_the_declaring_checks():
    cp = pytest_run("--collect-only", "-q", "--catching", "match-ignored")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    tests = {ln.strip() for ln in cp.stdout.splitlines() if "::" in ln}
    assert tests and tests == declaring("match-ignored"), tests ^ declaring("match-ignored")


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


# ---------------------------------------------------------------- the plugin driven by
# test doubles (tests/unit/fakes.py: a FAKE target and FAKE meshes, no root, no lab)

def fake_run(tmp_path: Path, mesh: str, *args: str, status: int = 503,
             env_extra: dict[str, str] | None = None
             ) -> tuple[subprocess.CompletedProcess[str], dict]:
    import os

    import yaml

    report = tmp_path / "report.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKE_STATUS": str(status),
           **(env_extra or {})}
    cp = subprocess.run([sys.executable, "-m", "pytest", "conformance", "-p", "no:cacheprovider",
                         "-p", "tests.unit.fakes", "--target", "fake", "--mesh", mesh,
                         "--conformance-report", str(report), "-rs", *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    return cp, (yaml.safe_load(report.read_text()) if report.exists() else {})


def results(report: dict) -> dict[str, str]:
    return {c["name"]: c["result"] for c in report["checks"]}


def test_a_mesh_claiming_nothing_skips_every_check_with_its_reason(tmp_path):
    cp, report = fake_run(tmp_path, "fake-nothing")
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-2000:]
    assert set(results(report).values()) == {"skipped"}, results(report)
    reasons = {c["name"]: c["reason"] for c in report["checks"]}
    assert "not claimed by mesh fake-nothing" in reasons["split-90-10"]
    assert report["profiles"][0]["summary"]["result"] == "partial"


def test_a_mesh_claiming_a_subset_gets_exactly_the_checks_it_claims(tmp_path):
    cp, report = fake_run(tmp_path, "fake-faults")
    ran = {n for n, r in results(report).items() if r != "skipped"}
    from meshproof.conformance.check import REGISTRY
    from tests.negative.test_defects import declared_checks

    declared_checks()
    claimed = {n for n, s in REGISTRY.items() if set(s.features) <= {"fault-injection"}}
    assert ran == claimed, (ran, claimed, cp.stdout[-2000:])
    # The FAKE target answers 503 to everything: "abort at 100% with 503" passes, the
    # percentage checks fail: the verdicts are real even on a fake.
    assert results(report)["fault-abort-all"] == "passed"
    assert results(report)["fault-abort-percent"] == "failed"
    assert cp.returncode == 1


def test_a_target_without_capture_skips_the_wire_check_with_the_reason(tmp_path):
    cp, report = fake_run(tmp_path, "fake-mtls", "-k", "wire_is_encrypted")
    check = next(c for c in report["checks"] if c["name"] == "mtls-wire-encrypted")
    assert check["result"] == "skipped", cp.stdout[-2000:]
    assert "target capability capture (target fake lacks it)" in check["reason"]


def test_mesh_capability_missing_skips_with_the_reason(tmp_path):
    cp, report = fake_run(tmp_path, "fake-mtls", "-k", "strict_refuses_plaintext")
    check = next(c for c in report["checks"] if c["name"] == "mtls-strict-refuses-plaintext")
    assert check["result"] == "skipped", cp.stdout[-2000:]
    assert "mesh capability bypass-sidecar (mesh fake-mtls lacks it)" in check["reason"]


def test_a_component_restart_during_a_check_is_recorded_with_it(tmp_path):
    cp, report = fake_run(tmp_path, "fake-faults", "-k", "fault_abort_all",
                          env_extra={"FAKE_RESTARTS": "1"})
    check = next(c for c in report["checks"] if c["name"] == "fault-abort-all")
    assert check["restarts"] == ["team-b/echo-0/sidecar x1"], cp.stdout[-2000:]
    assert any("restarted during the check" in line for line in check["verdict"])


def test_a_check_that_cannot_judge_says_so_with_its_evidence(tmp_path):
    """Every request (the delay check's control group too) as slow as the delay: the
    check cannot tell a delay apart. It is skipped, never failed, with the reason on its
    line, a ``cannot_judge`` judgement in the report, and the run ``partial``."""
    cp, report = fake_run(tmp_path, "fake-faults", "-k", "fault_delay", status=200,
                          env_extra={"FAKE_LATENCY_US": "2000000"})
    check = next(c for c in report["checks"] if c["name"] == "fault-delay-percent")
    assert check["result"] == "skipped", cp.stdout[-2000:]
    assert "cannot judge: 1620 of 1620 control requests took >= 995.0 ms" in check["reason"]
    assert [j["label"] for j in check["judgements"] if j.get("cannot_judge")]
    assert report["profiles"][0]["summary"]["result"] == "partial"
    assert "SKIP  fault-delay-percent" in cp.stdout and "cannot judge" in cp.stdout
    assert cp.returncode == 0
    # Quick answers (1 ms), all 200: nothing looks delayed, and the check fails.
    cp, report = fake_run(tmp_path, "fake-faults", "-k", "fault_delay", status=200)
    check = next(c for c in report["checks"] if c["name"] == "fault-delay-percent")
    assert check["result"] == "failed" and cp.returncode == 1, cp.stdout[-2000:]
    assert "0/1620" in check["reason"] + "".join(check["verdict"])
