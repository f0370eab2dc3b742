"""Every experiment passes against the reference mesh and fails against each xDS or
lab-level defect it declares, switched on in one lab (defects carried by an agent's or
the CA's flags, which need their own bring-up, and the full matrix are in
test_defects_chaos.py); nothing stays in place after an experiment,
after SIGINT mid-fault, after SIGKILL mid-fault (next run / down); ``chaos run`` of one
file works in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from contextlib import contextmanager

import pytest

from meshproof import registry
from meshproof.chaos import faults, ledger, runner
from meshproof.mesh.base import Token
from meshproof.targets.local import netns
from meshproof.mesh.reference_local import LAB_DEFECTS
from refmesh.xds.defects import XDS_DEFECTS
from tests.conftest import needs_root

pytestmark = [pytest.mark.lab, pytest.mark.mesh, needs_root]

FILES = {f.stem: f for f in runner.experiment_files()}
DECLARED = sorted({(d, n) for n, f in FILES.items() for d in runner.meta(f)["catches"]})
ROOT = Path(__file__).resolve().parents[2]
CHAOS = [sys.executable, "-c", "import sys; from chaostoolkit.__main__ import cli; sys.exit(cli())"]


#: Declared defects switched on in the running reference lab: the control plane's (xDS)
#: and the lab's wiring (lab-level). Agent and CA flags need their own bring-up.
LIVE_DECLARED = sorted({d for d, _ in DECLARED if d in XDS_DEFECTS | LAB_DEFECTS})


@contextmanager
def live_defect(defect: str) -> Iterator[None]:
    """While inside, the running reference lab has ``defect`` as a lab brought up with
    ``--defect`` has it. An xDS defect: the control plane's state option (what
    reference_local's ``program_defect`` sets), inside only once every sidecar ACKed it
    and nothing is warming (the adapter's programmed signal). A lab-level defect: the
    installer's ``set_defect`` (its listener in place). Saves a lab bring-up per defect
    in the CI tier; the nightly matrix brings up a lab per defect
    (test_defects_chaos.py)."""
    from refmesh import unixhttp

    from meshproof.mesh.refpaths import CP_API_SOCKET

    os.environ["MESHPROOF_DEFECT"] = defect  # the journals say which defect was in force
    if defect in LAB_DEFECTS:
        t = faults.target()
        assert t.mesh_call("set_defect", defect=defect) == defect
        try:
            yield
        finally:
            t.mesh_call("set_defect", defect="")
            os.environ["MESHPROOF_DEFECT"] = ""
        return

    def serve(defects: list[str]) -> None:
        _, state = unixhttp.request_json(CP_API_SOCKET, "GET", "/state", timeout=5)
        options = {**(state.get("options") or {}), "defects": defects}
        status, answer = unixhttp.request_json(CP_API_SOCKET, "PUT", "/state",
                                               {"options": options}, timeout=5)
        assert status == 200, answer
        faults.adapter().wait_programmed(Token("reference", int(answer["version"])), 20)

    serve([defect])
    try:
        yield
    finally:
        serve([])
        os.environ["MESHPROOF_DEFECT"] = ""


def assert_fails_as_negative_control(name: str, r: runner.Result) -> None:
    """Failed, where the experiment looks (the hypothesis during the fault, or a method
    check), after a healthy start, with the rollbacks done."""
    assert not r.passed, (name, r.phases)
    assert r.phases["before"] == "PASS", (name, r.phases, r.notes)
    assert "FAIL" in (r.phases["during"], r.phases["method"]), (name, r.phases)
    assert r.phases["rollbacks"] == "PASS", (name, r.phases, r.notes)


def _lab(defect: str = "") -> Iterator[object]:
    faults.reset_cache()
    os.environ["MESHPROOF_DEFECT"] = defect
    from meshproof.errors import TargetError

    for attempt in range(30):  # bounded: a lab just torn down may still hold the lock
        try:
            t = registry.start_target("local", "reference", defect)
            break
        except TargetError as exc:
            if "another lab is starting" not in str(exc) or attempt == 29:
                raise
            time.sleep(2)
    try:
        yield t
    finally:
        faults.reset_cache()
        t.down()


@pytest.fixture(scope="module")
def lab() -> Iterator[object]:
    yield from _lab()


def assert_nothing_in_place(t) -> None:
    """No fault of any kind is left: the ledger is empty; every component runs and no
    toxiproxy process is left; no block rule; every workload has its topology's
    replicas, all ready; the mesh's policy has no intent left; no capture redirect."""
    from meshproof.mesh.reference import ControlPlaneClient
    from meshproof.paths import RUN_DIR

    assert ledger.entries() == []
    comps = t.components()
    assert all(comps.values()), [n for n, up in comps.items() if not up]
    assert not [n for n in comps if "/proc/toxiproxy" in n], comps
    assert json.loads((RUN_DIR / "lab.json").read_text())["blocks"] == []
    pods = t.pods()
    assert all(p.ready for p in pods), [p.key for p in pods if not p.ready]
    assert len([p for p in pods if p.workload == "reviews-v1"]) == 1, [p.key for p in pods]
    from meshproof.mesh.refpaths import CERT_TTL

    assert not CERT_TTL.exists(), "a shortened certificate TTL was left in force"
    assert ControlPlaneClient().policy().to_dict() == type(
        ControlPlaneClient().policy())().to_dict(), "an intent was left in force"
    for p in pods:
        if p.meshed:
            rules = subprocess.run(["ip", "netns", "exec", netns.pod_netns(p.namespace, p.name),
                                    "iptables", "-t", "nat", "-S"], capture_output=True,
                                   text=True, timeout=10).stdout
            assert str(faults.TOX_PORT) not in rules, (p.key, rules)


@pytest.mark.parametrize("name", sorted(FILES))
def test_passes_on_the_reference_mesh(lab, name, tmp_path) -> None:
    r = runner.run(FILES[name], tmp_path)
    assert r.passed, (r.phases, r.notes)
    journal = json.loads(Path(r.journal).read_text())
    mp = journal["meshproof"]
    assert journal["status"] == "completed" and not journal["deviated"]
    assert mp["hypothesis"]["during"] and mp["series"] and mp["injected"]
    assert mp["rollbacks"] and all(x["status"] == "succeeded" for x in mp["rollbacks"])
    assert Path(r.plot).stat().st_size > 5000
    assert_nothing_in_place(lab)


@pytest.mark.parametrize("defect", LIVE_DECLARED)
def test_fails_against_each_declared_defect_live(lab, defect, tmp_path) -> None:
    names = [n for d, n in DECLARED if d == defect]
    with live_defect(defect):
        results = {n: runner.run(FILES[n], tmp_path, fail_fast=True) for n in names}
    for n, r in results.items():
        assert_fails_as_negative_control(n, r)
    assert_nothing_in_place(lab)


def _chaos_run(name: str, journal: Path, experiment: Path | None = None
               ) -> subprocess.Popen[str]:
    env = {**os.environ, faults.EVENTS_ENV: str(journal.with_suffix(".events"))}
    return subprocess.Popen(CHAOS + ["--no-log-file", "run", "--rollback-strategy", "always",
                                     "--hypothesis-strategy", "continuously",
                                     "--hypothesis-frequency", "0.5",
                                     "--journal-path", str(journal),
                                     str(experiment or FILES[name])],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _wait_for_fault(proc: subprocess.Popen[str], kind: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(e["kind"] == kind for e in ledger.entries()):
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the fault was never injected"
        time.sleep(0.05)
    time.sleep(0.5)  # mid-fault


def test_chaos_run_cli_in_a_subprocess(lab, tmp_path) -> None:
    journal = tmp_path / "journal.json"
    proc = _chaos_run("sidecar-crash", journal)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    j = json.loads(journal.read_text())
    assert j["status"] == "completed" and not j["deviated"], out
    assert j["steady_states"]["during"] and all(s["steady_state_met"]
                                                for s in j["steady_states"]["during"])
    assert_nothing_in_place(lab)


def test_sigint_mid_fault_runs_the_rollbacks(lab, tmp_path) -> None:
    # The shipped experiment holds its fault for 2 s: on a loaded CI machine the
    # SIGINT once landed after the heal (the run "completed"). The same experiment
    # with a 30 s hold makes "mid-fault" certain; the interrupt ends it at once.
    held = tmp_path / "timeout-blackhole.yaml"
    text = FILES["timeout-blackhole"].read_text()
    assert "func: pause, arguments: {seconds: 2}" in text
    held.write_text(text.replace("func: pause, arguments: {seconds: 2}",
                                 "func: pause, arguments: {seconds: 30}"))
    journal = tmp_path / "journal.json"
    proc = _chaos_run("timeout-blackhole", journal, held)
    _wait_for_fault(proc, "toxiproxy")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    j = json.loads(journal.read_text())
    assert j["status"] == "interrupted", out
    assert j["rollbacks"] and all(r["status"] == "succeeded" for r in j["rollbacks"]), out
    assert_nothing_in_place(lab)


@pytest.mark.slow  # nightly: 15-40 s each; the race it found has a lab-free test in CI
@pytest.mark.parametrize("name,kind", [
    ("timeout-blackhole", "toxiproxy"),
    ("controlplane-outage", "component"),
    ("ca-outage", "cert-ttl")])
def test_sigkill_mid_fault_is_undone_by_the_next_run(lab, tmp_path, name, kind) -> None:
    proc = _chaos_run(name, tmp_path / "journal.json")
    _wait_for_fault(proc, kind)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert ledger.entries(), "the killed run's fault is in the ledger"
    faults.reset_cache()
    # The next run starts by undoing the ledger (runner.run does this first).
    r = runner.run(FILES["sidecar-crash"], tmp_path)
    assert r.passed, (r.phases, r.notes)
    assert any("undone from a previous run" in n for n in r.notes), r.notes
    assert_nothing_in_place(lab)
