"""Fixtures for the reference mesh's tests: real CA, agent, control plane and Envoy processes.

Everything listens on Unix sockets under a short temp dir (socket paths
must stay under 108 bytes) or on 127.0.0.1; every process started here is
killed in the fixture's finally.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "reference-mesh") not in sys.path:
    sys.path.insert(0, str(ROOT / "reference-mesh"))

from refmesh import unixhttp  # noqa: E402
from refmesh.envoy_binary import find_envoy  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [str(ROOT / "reference-mesh"), str(ROOT), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture
def sockdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rm-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def envoy_bin() -> str:
    return str(find_envoy())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], object], timeout: float, what: str, step: float = 0.05) -> object:
    """Poll ``pred`` until truthy (bounded); fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last_exc = e
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


class Procs:
    """Processes a test started; all are killed at teardown."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], pipes: bool = False) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own process group (so stop() also ends its children)."""
        log = open(self.logdir / f"{name}.log", "wb")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if pipes else log,
                             stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                             stderr=log if pipes else subprocess.STDOUT, env=ENV,
                             start_new_session=True)
        self.procs.append((name, p))
        return p

    def python(self, name: str, module: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(name, [sys.executable, "-m", module, *args])

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def stop(self, p: subprocess.Popen[bytes]) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        try:  # anything left in its group (e.g. Envoys a driver started)
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop_all(self) -> None:
        for _, p in reversed(self.procs):
            self.stop(p)


@pytest.fixture
def procs(sockdir: Path) -> Iterator[Procs]:
    ps = Procs(sockdir)
    try:
        yield ps
    finally:
        ps.stop_all()
        # Shown by pytest only when the test fails: the processes' own words.
        for name, _ in ps.procs:
            print(f"----- {name} (last 40 lines) -----")
            print("\n".join(ps.log(name).splitlines()[-40:]))


def wait_socket(path: Path, timeout: float = 10.0) -> None:
    wait_for(lambda: unixhttp.request(path, "GET", "/healthz", timeout=1)[0] == 200, timeout,
             f"{path} to answer /healthz")


@pytest.fixture
def ca(procs: Procs, sockdir: Path) -> Path:
    """A running CA; returns its socket."""
    sock = sockdir / "ca.sock"
    procs.python("ca", "refmesh.ca", "--state-dir", str(sockdir / "ca-state"), "--socket", str(sock))
    wait_socket(sock)
    return sock
