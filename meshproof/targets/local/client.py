"""``LocalTarget``: the target interface, served by the lab daemon.

``LocalTarget.start()`` launches the daemon (which builds the lab) and
relays its progress; ``LocalTarget.attach()`` joins a lab that is already up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshproof.errors import MeshproofError, TargetError
from meshproof.targets.local import cleanup, labd, lock
from meshproof.targets.local.rpc import call, raise_error
from meshproof.targets.local.shell import require_root

Progress = Callable[[str, int, int], None]


def daemon_pid() -> int | None:
    try:
        pid = int(labd.PIDFILE.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"meshproof.targets.local.labd" in cmdline else None


class LocalTarget:
    name = "local"

    def __init__(self, sock: Path = labd.SOCKET) -> None:
        self.sock = sock

    # ---------------------------------------------------------- lifecycle

    @classmethod
    def running(cls) -> bool:
        return daemon_pid() is not None and labd.SOCKET.exists()

    @classmethod
    def attach(cls) -> LocalTarget:
        if not cls.running():
            raise TargetError("no lab is running", "start one with 'meshproof up'")
        return cls()

    @classmethod
    def start(cls, mesh: str = "none", defect: str = "", reviews_replicas: int = 1,
              progress: Progress | None = None, timeout: float = 180.0,
              topology: str = "fixture") -> LocalTarget:
        """Start the lab daemon and wait until the topology is ready."""
        require_root()
        if cls.running():
            raise TargetError("a lab is already running",
                              "use it, or remove it first with 'meshproof down'")
        argv = [sys.executable, "-m", "meshproof.targets.local.labd", "--mesh", mesh,
                "--reviews-replicas", str(reviews_replicas)]
        if defect:
            argv += ["--defect", defect]
        if topology != "fixture":
            argv += ["--topology", topology]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True, text=True)
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # stray output (logs) is not a progress event
                if "progress" in event and progress:
                    progress(event["progress"], event["done"], event["total"])
                if "error" in event:
                    proc.wait(30)
                    raise_error(event["error"])
                if event.get("ready"):
                    return cls()
                if time.monotonic() > deadline:
                    raise TargetError(f"the lab was not up within {timeout:.0f}s")
            raise TargetError(f"the lab daemon exited ({proc.wait()}) before it was ready",
                              "run 'meshproof down', then retry; logs: /run/meshproof/")
        except BaseException:
            # Ctrl-C or an error: the daemon rolls back on SIGTERM; make sure.
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            cleanup.sweep()
            raise

    def down(self) -> dict[str, list[str]]:
        return stop_lab()

    # ---------------------------------------------------------- the interface

    def _call(self, method: str, timeout: float = 120.0, **args: Any) -> Any:
        return call(self.sock, method, args, timeout)

    def info(self) -> dict[str, Any]:
        return self._call("info")

    def capabilities(self) -> list[str]:
        return self._call("capabilities")

    def pods(self) -> list[dict[str, Any]]:
        return self._call("list_pods")

    def services(self) -> list[dict[str, Any]]:
        return self._call("list_services")

    def client_pod(self, namespace: str) -> str:
        return self._call("client_pod", namespace=namespace)

    def scale(self, workload: str, replicas: int) -> list[str]:
        return self._call("scale", workload=workload, replicas=replicas)

    def kill_pod(self, pod: str) -> None:
        self._call("kill_pod", key=pod)

    def revive_pod(self, pod: str) -> None:
        self._call("revive_pod", key=pod)

    def components(self) -> dict[str, bool]:
        return self._call("components")

    def stop_component(self, name: str) -> None:
        self._call("stop_component", name=name)

    def start_component(self, name: str) -> None:
        self._call("start_component", name=name)

    def block(self, a: str, b: str) -> None:
        self._call("block", a=a, b=b)

    def unblock(self, a: str, b: str) -> None:
        self._call("unblock", a=a, b=b)

    def capture_start(self, src: str, dst: str) -> str:
        return self._call("capture_start", src=src, dst=dst)

    def capture_stop(self, capture_id: str, marker: str = "") -> dict[str, Any]:
        return self._call("capture_stop", cid=capture_id, marker=marker)

    def put_file(self, pod: str, name: str, content: str) -> str:
        return self._call("put_file", key=pod, name=name, content=content)

    def swap_identity(self, pod: str, as_pod: str) -> None:
        self._call("swap_identity", key=pod, as_pod=as_pod)

    def bootstrap_token(self, pod: str) -> str:
        return self._call("bootstrap_token", key=pod)

    def start_process(self, pod: str, name: str, argv: list[str], as_root: bool = True) -> None:
        self._call("start_process", pod=pod, name=name, argv=argv, as_root=as_root)

    def stop_process(self, pod: str, name: str) -> None:
        self._call("stop_process", pod=pod, name=name)

    def probe(self, src: str, order: dict[str, Any], as_proxy_uid: bool = False
              ) -> dict[str, Any]:
        budget = float(order.get("deadline_s", 60)) + float(order.get("timeout_s", 5)) + 30
        return self._call("probe", timeout=budget, src=src, order=order,
                          as_proxy_uid=as_proxy_uid)


def stop_lab(timeout: float = 30.0) -> dict[str, list[str]]:
    """Stop the lab if one lives (also one still starting), then sweep whatever is left."""
    require_root()
    pid = daemon_pid()
    if pid is None:
        holder = lock.holder()
        pid = holder if holder not in (None, -1, os.getpid()) else None
    if pid is not None:
        try:
            call(labd.SOCKET, "down", timeout=5)
        except MeshproofError:
            os.kill(pid, 15)  # still starting: SIGTERM makes labd roll back
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, 9)
    return cleanup.sweep()


def _alive(pid: int) -> bool:
    try:  # reap it if it is our child (pytest started it), else just look
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    return Path(f"/proc/{pid}").exists() and not cleanup.is_zombie(pid)
