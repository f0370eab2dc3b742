"""Removing everything a run made, including what a killed run left behind.

Nothing here trusts the run to have finished its bookkeeping: the sweep
finds our resources by their names and marks (``mp-`` namespaces and their
/etc/netns dirs, processes inside them or carrying ``MESHPROOF_OWNER``, the
run dir), so it also cleans up after a SIGKILL in the middle of ``up``.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from meshproof import paths
from meshproof.targets.local import lock, netns
from meshproof.targets.local.procs import OWNER_ENV


def owned_pids() -> list[int]:
    """Processes of ours: inside our namespaces or marked with our owner variable."""
    mark = f"{OWNER_ENV}={paths.RUN_DIR}".encode()
    me = os.getpid()
    found: set[int] = set()
    for ns in netns.list_ours():
        found.update(netns.pids_in(ns))
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes()
        except OSError:
            continue
        if mark in env.split(b"\0"):
            found.add(int(d.name))
    found.discard(me)
    return sorted(found)


def kill_all(pids: list[int], timeout: float = 3.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and not is_zombie(p)]
            if not pids:
                return
            time.sleep(0.02)


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] == "Z"
    except (OSError, IndexError):
        return False


#: What a sweep looks for and reports, by kind: netns names, pids, /etc/netns dirs, run-dir entries.
KINDS = ("netns", "processes", "etc_netns", "run_dir")
Report = dict[str, list[str]]


def leftovers() -> Report:
    """What a sweep would remove now (``meshproof status`` shows it)."""
    etc = [str(p) for p in netns.NETNS_ETC.glob(f"{netns.PREFIX}*")] \
        if netns.NETNS_ETC.exists() else []
    run = [str(p) for p in paths.RUN_DIR.iterdir()] if paths.RUN_DIR.exists() else []
    return {"netns": netns.list_ours(), "processes": [str(p) for p in owned_pids()],
            "etc_netns": etc, "run_dir": run}


def gone(before: Report, after: Report) -> Report:
    """What ``before`` listed and ``after`` no longer does: what was really removed.

    Counting what was found is not counting what was removed (a teardown
    that ran first leaves a later sweep nothing to find, and something that
    would not die is still there): reports are always before minus after.
    """
    return {k: [x for x in before.get(k, []) if x not in set(after.get(k, []))] for k in KINDS}


def merge(*reports: Report) -> Report:
    """The union of several reports (each item once, first seen first)."""
    out: Report = {k: [] for k in KINDS}
    for r in reports:
        for k in KINDS:
            out[k] += [x for x in r.get(k, []) if x not in out[k]]
    return out


def count(report: Report) -> int:
    return sum(len(report.get(k, [])) for k in KINDS)


def _undo_chaos_ledger() -> None:
    """Faults a killed chaos run recorded (toxiproxy redirects, blocks, stopped components,
    intents): undone on a lab that still runs, dropped with one that is gone."""
    try:
        from meshproof.chaos import ledger

        ledger.undo_all()
    except Exception as exc:  # the sweep itself must go on
        print(f"meshproof: chaos ledger: {exc}", flush=True)


def sweep() -> Report:
    """Remove every leftover; returns what was really removed (found, and gone after)."""
    _undo_chaos_ledger()
    found = leftovers()
    kill_all([int(p) for p in found["processes"]])
    ours = netns.list_ours()
    for ns in [n for n in ours if n != netns.FABRIC] + [n for n in ours if n == netns.FABRIC]:
        netns.delete(ns)
    for d in found["etc_netns"]:
        shutil.rmtree(d, ignore_errors=True)
    if paths.RUN_DIR.exists():
        shutil.rmtree(paths.RUN_DIR, ignore_errors=True)
    if lock.holder() is None:  # a killed run's lock file (the flock itself died with it)
        lock.LOCK_PATH.unlink(missing_ok=True)
    return gone(found, leftovers())
