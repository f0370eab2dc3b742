"""Bring-up and teardown: nothing left behind, nothing added to the host, clear errors.

These tests own the machine while they run (they sweep), so they refuse to
start when a lab is already up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshproof import paths
from meshproof.errors import ConfigError, TargetError
from meshproof.targets.local import cleanup, lock, netns
from meshproof.targets.local.client import LocalTarget, stop_lab
from meshproof.targets.local.lab import Lab, validate
from meshproof.targets.model import WorkloadSpec
from meshproof.topology import fixture_topology
from tests.conftest import needs_root

pytestmark = [pytest.mark.lab, needs_root]


@pytest.fixture(autouse=True)
def _machine_to_ourselves():
    lock.wait_free(900)  # another package's (or engineer's) lab: queue behind it
    yield
    stop_lab()


def host_network_state() -> str:
    """What the host's own namespace looks like: it must never change."""
    out = []
    for argv in (["ip", "-o", "addr"], ["ip", "route", "show", "table", "all"],
                 ["iptables-save"], ["ip", "-o", "link"]):
        cp = subprocess.run(argv, capture_output=True, text=True)
        lines = [ln for ln in cp.stdout.splitlines() if not ln.startswith("#")]
        out.append("\n".join(sorted(lines)))
    return "\n".join(out)


def nothing_left() -> dict[str, list[str]]:
    left = cleanup.leftovers()
    left["etc_netns"] = [str(p) for p in Path("/etc/netns").glob(f"{netns.PREFIX}*")] \
        if Path("/etc/netns").exists() else []
    left["shm"] = [p.name for p in Path("/dev/shm").glob("envoy*")]
    left["lock"] = [str(lock.LOCK_PATH)] if lock.LOCK_PATH.exists() else []
    left["veth"] = [ln for ln in subprocess.run(["ip", "-o", "link"], capture_output=True,
                                                text=True).stdout.splitlines() if "mpv" in ln]
    return {k: v for k, v in left.items() if v}


def test_up_down_leaves_nothing_and_host_untouched():
    before = host_network_state()
    target = LocalTarget.start()
    assert len(target.pods()) == fixture_topology().pod_count
    assert host_network_state() == before, "the lab changed the host's own namespace"
    target.down()
    assert nothing_left() == {}
    assert host_network_state() == before


def test_a_second_lab_is_refused_while_one_lives():
    target = LocalTarget.start()
    try:
        with pytest.raises(TargetError, match="another lab is starting or running"):
            Lab().up(fixture_topology())
        assert len(target.pods()) == fixture_topology().pod_count  # the first is untouched
    finally:
        target.down()
    assert nothing_left() == {}


def test_sigkill_mid_up_then_down_removes_leftovers():
    proc = subprocess.Popen([sys.executable, "-m", "meshproof.targets.local.labd"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until it is half way: some pods exist
        ev = json.loads(line)
        if ev.get("done", 0) >= 6:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert netns.list_ours(), "the kill came too late to leave anything behind"
    assert cleanup.owned_pids(), "pod processes should outlive the killed daemon"
    removed = stop_lab()
    assert removed["netns"] and removed["processes"]
    assert nothing_left() == {}


def test_next_up_removes_a_killed_runs_leftovers():
    proc = subprocess.Popen([sys.executable, "-m", "meshproof.targets.local.labd"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line).get("ready"):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stale = set(netns.list_ours())
    target = LocalTarget.start()  # sweeps first, then builds afresh
    assert len(target.pods()) == fixture_topology().pod_count
    assert set(netns.list_ours()) == stale  # same names, new namespaces, no extras
    target.down()
    assert nothing_left() == {}


def test_not_root_gets_a_clear_error_and_nothing_is_made(monkeypatch, capsys):
    from meshproof import cli

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["up"]) == 2
    err = capsys.readouterr().err
    assert "needs root" in err and "sudo" in err
    assert nothing_left() == {}


def test_port_clash_is_rejected_before_anything_is_made():
    topo = fixture_topology()
    topo.workloads.append(WorkloadSpec("team-a", "web", "echo", port=15001))
    with pytest.raises(ConfigError, match="port 15001 clashes with the sidecar"):
        Lab().up(topo)
    assert nothing_left() == {}


def test_unknown_role_and_namespace_are_named():
    topo = fixture_topology()
    topo.workloads.append(WorkloadSpec("team-z", "web", "echo"))
    with pytest.raises(ConfigError, match="unknown namespace 'team-z'"):
        validate(topo)
    topo = fixture_topology()
    topo.workloads.append(WorkloadSpec("team-a", "web", "nginx"))
    with pytest.raises(ConfigError, match="unknown role 'nginx'"):
        validate(topo)


def test_app_that_cannot_start_rolls_back_everything(monkeypatch, tmp_path):
    # A workload whose process dies at once: up fails naming it, and leaves nothing.
    broken = tmp_path / "workload.py"
    broken.write_text("import sys; print('boom: cannot bind'); sys.exit(3)\n")
    monkeypatch.setattr(paths, "WORKLOAD_PY", broken)
    t0 = time.monotonic()
    with pytest.raises(Exception, match="exited with code 3 before it was ready"):
        Lab().up(fixture_topology())
    assert time.monotonic() - t0 < 30
    assert nothing_left() == {}


def test_unknown_mesh_and_target_exit_2():
    for argv in (["up", "--mesh", "linkerdx"], ["up", "--target", "mars"]):
        cp = subprocess.run([sys.executable, "-m", "meshproof.cli", *argv],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 2, (argv, cp.stderr)
        assert "unknown" in cp.stderr and "hint" in cp.stderr
    assert nothing_left() == {}
