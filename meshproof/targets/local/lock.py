"""One lab per machine (per ``MESHPROOF_INSTANCE``): an exclusive lock held from the start of ``up`` to the end of ``down``.

Two labs would sweep each other's namespaces (cleanup works by name), so a
second ``up`` must not start while a first one lives. The lock is an
``flock`` (released by the kernel if the holder dies, so a killed run never
blocks the next), on a file outside the run dir, which the sweep removes.

The file says who holds it and what that lab is doing: ``PID PHASE``, the
phase one of ``starting``, ``ready``, ``stopping``. ``meshproof status``
reads it while the lab has no socket yet (bring-up sweeps the run dir) or
no longer (teardown removed it), so it can say "a lab is starting" instead
of mistaking a lab in the making for a killed run's leftovers.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from meshproof import paths
from meshproof.errors import TargetError

LOCK_PATH = Path(os.environ.get(
    "MESHPROOF_LOCK",
    f"/run/lock/meshproof-{paths.INSTANCE}.lock" if paths.INSTANCE else "/run/lock/meshproof.lock"))
PHASES = ("starting", "ready", "stopping")
_RECORD = 48  # fixed width: a phase change rewrites in place, readers never see it empty


def _open() -> int:
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    return os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)


#: How a refused acquire starts (it crosses labd's JSON wire as text, so callers
#: that retry match on it).
BUSY = "another lab is starting or running on this machine"


def acquire() -> int:
    """Take the lock now or raise, naming the holder; returns the fd to release."""
    fd = _open()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid, phase = _read()
        raise TargetError(f"{BUSY} "
                          f"(pid {pid}, {phase or 'phase unknown'})",
                          "wait for it, or remove it with 'meshproof down'") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, _record(os.getpid(), "starting"), 0)
    return fd


def _record(pid: int, phase: str) -> bytes:
    return f"{pid} {phase}".ljust(_RECORD - 1).encode() + b"\n"


def set_phase(phase: str) -> None:
    """Say what the lab holding the lock does now (only its holder may; others: no-op)."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    state = holder_state()
    if state is None or state[0] != os.getpid():
        return
    try:
        fd = os.open(LOCK_PATH, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        os.pwrite(fd, _record(os.getpid(), phase), 0)
    finally:
        os.close(fd)


def _read() -> tuple[int, str]:
    """(pid, phase) as the file says; pid -1 when unreadable (an old or torn record)."""
    try:
        words = LOCK_PATH.read_text().split()
    except OSError:
        return -1, ""
    try:
        pid = int(words[0]) if words else -1
    except ValueError:
        pid = -1
    return pid or -1, words[1] if len(words) > 1 else ""


def release(fd: int) -> None:
    try:
        LOCK_PATH.unlink(missing_ok=True)
    finally:
        os.close(fd)  # closing drops the flock


def holder() -> int | None:
    """The pid holding the lock (-1 if it cannot be read), or None when no lab lives."""
    state = holder_state()
    return None if state is None else state[0]


def holder_state() -> tuple[int, str] | None:
    """(pid, phase) of the lab holding the lock, or None when no lab lives.

    Held or not is the kernel's answer (a probe ``flock``), never the file's
    content: a killed holder's file says "ready" but holds nothing.
    """
    if not LOCK_PATH.exists():
        return None
    try:
        fd = os.open(LOCK_PATH, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read()
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def wait_free(timeout_s: float, say: "callable[[str], None] | None" = None) -> None:
    """Block (bounded) until no lab holds the lock: test runs queue instead of colliding."""
    deadline = time.monotonic() + timeout_s
    told = False
    while (pid := holder()) is not None:
        if time.monotonic() > deadline:
            raise TargetError(f"a lab (pid {pid}) still holds the machine after "
                              f"{timeout_s:.0f}s", "remove it with 'meshproof down'")
        if say and not told:
            say(f"waiting for the lab of pid {pid} to finish (up to {timeout_s:.0f}s)")
            told = True
        time.sleep(0.5)
