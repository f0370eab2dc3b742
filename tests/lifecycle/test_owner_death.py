"""Honest runs: the lab dies with its owner, and ``status`` / ``down`` say what they found.

A harness (a real pytest session holding the plugin's lab) is SIGKILLed
during bring-up, during checks and during teardown; each time nothing of
the lab may be left within a few seconds (labd watches its owner's pidfd),
and the next run must start at once (no queueing behind an orphan for
900 s) and pass a probe through the new lab. ``meshproof up`` is the one
starter whose lab outlives it; its lab is used to check that ``status``
says "starting" during bring-up (never "run meshproof down", which would
destroy the run that is starting), never tracebacks during teardown, and
that ``down`` reports what it really removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshproof import paths
from meshproof.targets.local import cleanup, lock, netns
from meshproof.targets.local.client import LocalTarget, stop_lab
from tests.conftest import needs_root
from tests.lifecycle.test_lifecycle import nothing_left

pytestmark = [pytest.mark.lab, needs_root]

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("harness_session.py")
#: A killed harness's lab must be gone within this (measured: about 1 s).
GONE_WITHIN_S = 15.0
#: The next run may wait this long for the lock at most (the old lab's teardown), not 900 s.
NEXT_RUN_WAIT_S = 5.0


@pytest.fixture(autouse=True)
def _machine_to_ourselves() -> Iterator[None]:
    lock.wait_free(900)  # another package's (or engineer's) lab: queue behind it
    yield
    stop_lab()


def harness(mode: str) -> subprocess.Popen[str]:
    """A pytest session that brings the plugin's lab (reference mesh) up and holds it."""
    env = dict(os.environ, MESHPROOF_HARNESS_MODE=mode, MESHPROOF_LAB_WAIT_S="30")
    return subprocess.Popen([sys.executable, "-m", "pytest", str(HARNESS), "-s", "-q",
                             "-p", "no:cacheprovider", "--mesh", "reference"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> list[str]:
    """The harness's lines up to the first containing ``marker`` (fails if it ends first)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if marker in line:
            return lines
        assert time.monotonic() < deadline, f"no {marker!r} within {timeout}s:\n{''.join(lines)}"
    raise AssertionError(f"the harness ended before {marker!r}:\n{''.join(lines)}")


def sigkill(proc: subprocess.Popen[str]) -> float:
    """SIGKILL the harness (only its pytest process: labd has its own session); when."""
    assert proc.poll() is None, "the harness ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    t = time.monotonic()
    proc.wait()
    if proc.stdout:
        proc.stdout.close()
    return t


def seconds_until_nothing_left(since: float) -> float:
    """Wait (bounded) until no lab holds the machine and nothing of it is left."""
    while True:
        left = nothing_left()
        if not left and lock.holder() is None:
            return time.monotonic() - since
        assert time.monotonic() - since < GONE_WITHIN_S, \
            f"left {GONE_WITHIN_S:.0f}s after the harness was killed: {left}"
        time.sleep(0.05)


def next_run_passes() -> float:
    """A new harness run: it must not queue, must probe the new lab with success, and must
    leave nothing. Returns its wall time."""
    t0 = time.monotonic()
    proc = harness("probe")
    out, _ = proc.communicate(timeout=180)
    took = time.monotonic() - t0
    assert proc.returncode == 0, out
    assert "HARNESS probed" in out and "waiting for the lab" not in out, out
    assert nothing_left() == {}
    return took


def report(what: str, gone_s: float, next_s: float) -> None:
    print(f"\n{what}: nothing left {gone_s:.2f}s after SIGKILL; next run (bring-up, probe, "
          f"teardown) {next_s:.1f}s")


def wait_for_lab(pred: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.01)


def phase() -> str:
    state = lock.holder_state()
    return state[1] if state else ""


def sidecars_started() -> int:
    return len(list(paths.RUN_DIR.glob("pods/*/*/sidecar/envoy.log")))


def test_sigkill_of_the_harness_during_bringup() -> None:
    proc = harness("checks")
    # Half way: pods exist and the mesh is being injected, the lab is not ready.
    wait_for_lab(lambda: phase() == "starting" and sidecars_started() >= 3, "half-built lab")
    assert len(netns.list_ours()) >= 8
    gone = seconds_until_nothing_left(sigkill(proc))
    report("during bring-up", gone, next_run_passes())


def test_sigkill_of_the_harness_during_checks() -> None:
    proc = harness("checks")
    read_until(proc, "HARNESS checking")
    read_until(proc, "HARNESS checking")  # one probe round done, the next in flight
    assert len(netns.list_ours()) == 15 and phase() == "ready"
    gone = seconds_until_nothing_left(sigkill(proc))
    report("during checks", gone, next_run_passes())


def test_sigkill_of_the_harness_during_teardown() -> None:
    proc = harness("teardown")
    read_until(proc, "HARNESS done")
    wait_for_lab(lambda: phase() == "stopping", "teardown", timeout=30)  # stop_lab is running
    gone = seconds_until_nothing_left(sigkill(proc))
    report("during teardown", gone, next_run_passes())


def status() -> str:
    cp = subprocess.run([sys.executable, "-m", "meshproof.cli", "status"], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert "Traceback" not in cp.stdout + cp.stderr, cp.stdout + cp.stderr
    return cp.stdout


def watch_status(until: subprocess.Popen[str]) -> list[str]:
    """``meshproof status`` over and over while ``until`` runs: every distinct first line."""
    seen: list[str] = []
    while until.poll() is None:
        line = (status().splitlines() or [""])[0]
        if line not in seen:
            seen.append(line)
    return seen


def test_up_outlives_its_command_and_status_and_down_say_what_they_found() -> None:
    up = subprocess.Popen([sys.executable, "-m", "meshproof.cli", "up", "--mesh", "reference"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    during_up = watch_status(up)
    assert up.wait() == 0, up.stdout.read() if up.stdout else ""
    starting = [ln for ln in during_up if ln.startswith("a lab is starting (pid ")]
    assert starting, during_up
    assert not [ln for ln in during_up if "down" in ln or "leftovers" in ln], during_up

    # ``meshproof up`` passes no owner: its lab outlives the command.
    assert LocalTarget.running()
    assert status().startswith("lab running (pid ")
    before = cleanup.leftovers()
    assert len(before["netns"]) == 15 and before["processes"]

    down = subprocess.Popen([sys.executable, "-m", "meshproof.cli", "down"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    during_down = watch_status(down)
    out = down.stdout.read() if down.stdout else ""
    assert down.wait() == 0, out
    assert during_down and during_down[-1] == "no lab running", during_down
    assert all(ln.startswith(("lab running", "a lab is stopping", "no lab running"))
               for ln in during_down), during_down
    # It says what it really removed: every netns and process that was there.
    assert f"removed 15 netns, {len(before['processes'])} processes" in out, out
    assert nothing_left() == {}
    again = subprocess.run([sys.executable, "-m", "meshproof.cli", "down"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert "nothing to remove" in again.stdout, again.stdout
