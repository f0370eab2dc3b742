"""One lab per machine: an exclusive lock held from the start of ``up`` to the end of ``down``.

Two labs would sweep each other's namespaces (cleanup works by name), so a
second ``up`` must not start while a first one lives. The lock is an
``flock`` (released by the kernel if the holder dies, so a killed run never
blocks the next), on a file outside the run dir, which the sweep removes.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from meshproof.errors import TargetError

LOCK_PATH = Path(os.environ.get("MESHPROOF_LOCK", "/run/lock/meshproof.lock"))


def _open() -> int:
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    return os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)


def acquire() -> int:
    """Take the lock now or raise, naming the holder; returns the fd to release."""
    fd = _open()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = LOCK_PATH.read_text().strip() if LOCK_PATH.exists() else "?"
        raise TargetError(f"another lab is starting or running on this machine (pid {pid})",
                          "wait for it, or remove it with 'meshproof down'") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def release(fd: int) -> None:
    try:
        LOCK_PATH.unlink(missing_ok=True)
    finally:
        os.close(fd)  # closing drops the flock


def holder() -> int | None:
    """The pid holding the lock, or None when no lab lives."""
    if not LOCK_PATH.exists():
        return None
    fd = _open()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return int(LOCK_PATH.read_text().strip() or 0) or -1
        except (OSError, ValueError):
            return -1
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
