"""Process supervision: start in a pod's netns as a given uid, readiness, logs, restart.

Every process gets ``MESHPROOF_OWNER`` in its environment: the sweep that
cleans up after a killed run finds stragglers by it, even those outside any
pod namespace (control plane, CA, agents).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from meshproof import paths
from meshproof.errors import TargetError

OWNER_ENV = "MESHPROOF_OWNER"
MAX_RESTARTS = 10
POLL_S = 0.05


@dataclass
class ProcSpec:
    name: str  # unique, e.g. "bookinfo/productpage-0/app"
    argv: list[str]
    log: Path
    netns: str | None = None
    uid: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Called with the live pid; None: ready once started. Taking the pid lets a
    # check ignore a stale marker left by the previous incarnation.
    ready: Callable[[int], bool] | None = None
    restart: bool = True
    group: str = ""  # the pod it belongs to


@dataclass
class Proc:
    spec: ProcSpec
    popen: subprocess.Popen[bytes]
    started: float
    restarts: int = 0
    wanted: bool = True  # False once stopped or killed on purpose
    was_ready: bool = False
    #: The supervisor told ``on_change`` that it became ready. Separate from
    #: ``was_ready``: ``wait_ready`` (another thread) may see the readiness first,
    #: and the change must still be announced (a scaled-up pod's agent turning ready
    #: is what pushes the registry the pod's sidecar waits for).
    announced: bool = False
    exit_code: int | None = None


def wrap(spec: ProcSpec) -> list[str]:
    argv = list(spec.argv)
    if spec.uid is not None:
        argv = ["setpriv", f"--reuid={spec.uid}", f"--regid={spec.uid}", "--clear-groups",
                "--", *argv]
    if spec.netns:
        argv = ["ip", "netns", "exec", spec.netns, *argv]
    return argv


class Supervisor:
    """Keeps processes running; calls ``on_change`` when one dies or becomes ready."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self.on_change = on_change
        self.procs: dict[str, Proc] = {}
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, spec: ProcSpec) -> subprocess.Popen[bytes]:
        spec.log.parent.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "LANG": "C.UTF-8", OWNER_ENV: str(paths.RUN_DIR), **spec.env}
        with open(spec.log, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start {spec.name}\n".encode())
            log.flush()
            try:
                return subprocess.Popen(wrap(spec), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
            except OSError as exc:
                raise TargetError(f"cannot start {spec.name}: {exc}") from exc

    def start(self, spec: ProcSpec) -> Proc:
        with self.lock:
            old = self.procs.get(spec.name)
            if old and old.popen.poll() is None:
                raise TargetError(f"{spec.name} is already running (pid {old.popen.pid})")
            proc = Proc(spec, self._spawn(spec), time.monotonic())
            self.procs[spec.name] = proc
            return proc

    def wait_ready(self, names: list[str], timeout: float) -> None:
        """Block until every named process is ready; raise with its log tail if one dies."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                proc = self.procs[name]
                if proc.popen.poll() is not None:
                    raise TargetError(f"{name} exited with code {proc.popen.returncode} "
                                      f"before it was ready:\n{tail(proc.spec.log)}",
                                      f"see the full log: {proc.spec.log}")
                if self.is_ready(name):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise TargetError(f"not ready within {timeout:.0f}s: {', '.join(pending)}",
                                  f"see logs under {paths.RUN_DIR}")
            if pending:
                time.sleep(0.01)

    def is_ready(self, name: str) -> bool:
        proc = self.procs.get(name)
        if proc is None or proc.popen.poll() is not None:
            return False
        if proc.was_ready:
            return True
        ok = proc.spec.ready(proc.popen.pid) if proc.spec.ready else True
        proc.was_ready = ok
        return ok

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.popen.poll() is None

    def stop(self, name: str, *, kill: bool = False, timeout: float = 3.0) -> None:
        """Stop on purpose (no restart). ``kill``: SIGKILL at once, like a crash."""
        with self.lock:
            proc = self.procs.get(name)
            if proc is None:
                return
            proc.wanted = False
        terminate(proc.popen, kill=kill, timeout=timeout)

    def restart(self, name: str) -> Proc:
        with self.lock:
            proc = self.procs[name]
            if proc.popen.poll() is None:
                terminate(proc.popen, timeout=3.0)
            new = Proc(proc.spec, self._spawn(proc.spec), time.monotonic(), proc.restarts)
            self.procs[name] = new
            return new

    def forget(self, name: str) -> None:
        self.stop(name)
        with self.lock:
            self.procs.pop(name, None)

    def stop_all(self) -> None:
        self._stop.set()
        with self.lock:
            procs = list(self.procs.values())
            for p in procs:
                p.wanted = False
        for p in procs:
            if p.popen.poll() is None:
                p.popen.terminate()
        deadline = time.monotonic() + 3
        for p in procs:
            try:
                p.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
        self._thread.join(2)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            changed = False
            with self.lock:
                for name, proc in list(self.procs.items()):
                    code = proc.popen.poll()
                    if code is None:
                        if not proc.announced and self.is_ready(name):
                            proc.announced = True
                            changed = True
                        continue
                    if proc.exit_code is None:
                        proc.exit_code = code
                        changed = True
                    if proc.wanted and proc.spec.restart and proc.restarts < MAX_RESTARTS:
                        backoff = min(0.1 * 2 ** proc.restarts, 5.0)
                        if time.monotonic() - proc.started > backoff:
                            new = Proc(proc.spec, self._spawn(proc.spec), time.monotonic(),
                                       proc.restarts + 1)
                            self.procs[name] = new
            if changed:
                try:
                    self.on_change()
                except Exception as exc:  # a failing callback must not stop supervision
                    print(f"supervisor: on_change failed: {exc}", flush=True)


def terminate(popen: subprocess.Popen[bytes], *, kill: bool = False, timeout: float = 3.0
              ) -> None:
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
