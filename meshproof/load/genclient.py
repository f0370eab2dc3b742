"""Starting the generator (in a pod or locally) and giving it orders over its Unix socket.

The generator is a separate process so gevent's monkey-patching stays out of
the harness; the Unix socket keeps the control traffic off the pod network
being measured.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from meshproof import paths
from meshproof.errors import TargetError
from meshproof.jsonline import exchange
from meshproof.targets.base import LoadGenerator

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "loadtests" / "generator.py"
START_TIMEOUT_S = 20.0


class ProcessTarget(Protocol):
    def start_process(self, pod: str, name: str, argv: list[str],
                      as_root: bool = True) -> None: ...

    def stop_process(self, pod: str, name: str) -> None: ...


class Generator(LoadGenerator):
    """A running Locust generator: ``run(order)`` blocks for the run and returns its
    answer (the local lab's ``load_generator``; ``local()`` for tests)."""

    def __init__(self, sock: Path, label: str, stop: Any) -> None:
        self.sock = sock
        self.label = label
        self._stop = stop
        self._stopped = False

    def _call(self, msg: dict[str, Any], timeout: float) -> Any:
        answer = exchange(self.sock, msg, timeout, f"generator {self.label}")
        if "error" in answer:
            raise TargetError(f"generator {self.label}: {answer['error']}")
        return answer["ok"]

    def info(self) -> dict[str, Any]:
        return self._call({"cmd": "info"}, 10)

    def run(self, order: dict[str, Any]) -> dict[str, Any]:
        budget = float(order["duration_s"]) + float(order.get("warmup_s", 1)) \
            + 2 * float(order.get("timeout_s", 5)) + 30
        return self._call({"cmd": "run", "order": order}, budget)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self._call({"cmd": "quit"}, 5)
        except (OSError, TargetError):
            pass
        self._stop()


def _wait_socket(sock: Path, alive: Any, label: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not sock.exists():
        if not alive():
            raise TargetError(f"generator {label} exited before it listened")
        if time.monotonic() > deadline:
            raise TargetError(f"generator {label} did not listen within {START_TIMEOUT_S}s")
        time.sleep(0.05)


def in_pod(target: ProcessTarget, pod: str, name: str = "loadgen") -> Generator:
    """Start the generator as root inside ``pod`` (``ns/pod``): its traffic is the pod's."""
    ns, pod_name = pod.split("/", 1)
    sock = paths.RUN_DIR / "pods" / ns / pod_name / f"{name}.sock"
    sock.unlink(missing_ok=True)
    target.start_process(pod, name, [sys.executable, "-u", str(GENERATOR),
                                     "--socket", str(sock)])
    _wait_socket(sock, lambda: True, f"{pod}/{name}")
    return Generator(sock, f"{pod}/{name}", lambda: target.stop_process(pod, name))


def local(sock: Path) -> Generator:
    """Start the generator as a child process on this host (tests, the floor)."""
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-u", str(GENERATOR), "--socket", str(sock)],
                            stdin=subprocess.DEVNULL, start_new_session=True)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    try:
        _wait_socket(sock, lambda: proc.poll() is None, "local")
    except BaseException:
        stop()
        raise
    return Generator(sock, "local", stop)
