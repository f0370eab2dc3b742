"""``LocalTarget``: the target interface, served by the lab daemon.

``LocalTarget.start()`` launches the daemon (which builds the lab) and
relays its progress; ``LocalTarget.attach()`` joins a lab that is already up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshproof.errors import MeshproofError, TargetError
from meshproof.targets.base import LoadGenerator, Target
from meshproof.targets.local import cleanup, labd, lock
from meshproof.targets.local.rpc import call, raise_error
from meshproof.targets.local.shell import require_root
from meshproof.targets.model import (CaptureSummary, Pod, ProbeOrder, ProbeResult,
                                     ResourceUsage, ServiceInfo, ServicePort)

if TYPE_CHECKING:
    from meshproof.registry import MeshEntry

Progress = Callable[[str, int, int], None]
#: How long a new run waits for another lab on this machine to finish.
LAB_WAIT_S = float(os.environ.get("MESHPROOF_LAB_WAIT_S", "900"))


#: ``LocalTarget.start(owner_pid=CALLER)``: the lab dies with the calling process.
CALLER = -1


def daemon_pid() -> int | None:
    try:
        pid = int(labd.PIDFILE.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"meshproof.targets.local.labd" in cmdline else None


class LocalTarget(Target):
    """The netns lab on this host, driven over labd's Unix socket."""

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
              topology: str = "fixture", owner_pid: int | None = CALLER,
              load_clients: int = 1) -> LocalTarget:
        """Start the lab daemon and wait until the topology is ready.

        The lab dies with ``owner_pid`` (default: this process, so a killed
        harness leaves nothing behind); ``None`` detaches it, for a lab
        meant to outlive its starter (``meshproof up``).
        """
        require_root()
        if cls.running():
            raise TargetError("a lab is already running",
                              "use it, or remove it first with 'meshproof down'")
        argv = [sys.executable, "-m", "meshproof.targets.local.labd", "--mesh", mesh,
                "--reviews-replicas", str(reviews_replicas)]
        if defect:
            argv += ["--defect", defect]
        if topology != "fixture":
            argv += ["--topology", topology, "--load-clients", str(load_clients)]
        owner = os.getpid() if owner_pid == CALLER else owner_pid
        if owner is not None:
            argv += ["--owner-pid", str(owner)]
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

    def capabilities(self) -> frozenset[str]:
        return frozenset(self._call("capabilities"))

    def pods(self) -> list[Pod]:
        return [_pod(p) for p in self._call("list_pods")]

    def services(self) -> list[ServiceInfo]:
        return [ServiceInfo(namespace=s["key"].split("/")[0], name=s["key"].split("/")[1],
                            vip=s["vip"], port=int(s["port"]), target_port=int(s["target_port"]),
                            selector=dict(s["selector"]), endpoints=tuple(s["endpoints"]),
                            ports=tuple(ServicePort(**p) for p in s.get("ports") or ()))
                for s in self._call("list_services")]

    def scale(self, namespace: str, workload: str, replicas: int) -> list[Pod]:
        self._call("scale", workload=f"{namespace}/{workload}", replicas=replicas)
        return self.workload_pods(namespace, workload)

    def kill_pod(self, pod: Pod) -> None:
        self._call("kill_pod", key=pod.key)

    def revive_pod(self, pod: Pod) -> None:
        self._call("revive_pod", key=pod.key)

    def components(self) -> dict[str, bool]:
        return dict(self._call("components"))

    def stop_component(self, name: str) -> None:
        self._call("stop_component", name=name)

    def start_component(self, name: str) -> None:
        self._call("start_component", name=name)

    def block(self, a: Pod, b: Pod) -> None:
        self._call("block", a=a.key, b=b.key)

    def unblock(self, a: Pod, b: Pod) -> None:
        self._call("unblock", a=a.key, b=b.key)

    def capture_start(self, src: Pod, dst: Pod) -> str:
        return str(self._call("capture_start", src=src.key, dst=dst.key))

    def capture_stop(self, capture_id: str, marker: str = "") -> CaptureSummary:
        return CaptureSummary(**self._call("capture_stop", cid=capture_id, marker=marker))

    def put_file(self, pod: Pod, name: str, content: str) -> str:
        return str(self._call("put_file", key=pod.key, name=name, content=content))

    def restarts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._call("restarts").items()}

    def clock_tick_s(self) -> float:
        return float(self._call("clock_tick_s"))

    def probe(self, src: Pod, order: ProbeOrder, *, in_sidecar: bool = False
              ) -> list[ProbeResult]:
        answer = self.probe_raw(src.key, order.to_wire(), in_sidecar=in_sidecar,
                                budget_s=order.budget_s)
        return [ProbeResult.from_wire(r) for r in answer["results"]]

    # ---------------------------------------------------------- the lab's own calls
    # (not part of the target interface: the CLI, the load lab and the reference
    # mesh's local installer use them)

    def info(self) -> dict[str, Any]:
        return dict(self._call("info"))

    def probe_raw(self, src: str, order: dict[str, Any], *, in_sidecar: bool = False,
                  budget_s: float | None = None) -> dict[str, Any]:
        """A probe order as JSON from pod key ``src`` (``meshproof probe`` prints it)."""
        budget = budget_s if budget_s is not None else (
            float(order.get("deadline_s", 60)) + float(order.get("timeout_s", 5)) + 30)
        return dict(self._call("probe", timeout=budget, src=src, order=order,
                               as_proxy_uid=in_sidecar))

    def mesh_call(self, op: str, **args: Any) -> Any:
        """An operation of the mesh installed in this lab (its installer serves it)."""
        return self._call("mesh_call", op=op, args=args)

    # ---------------------------------------------------------- load

    def load_generator(self, pod: Pod) -> LoadGenerator:
        """The Locust generator (``loadtests/generator.py``) as root in the pod's netns,
        orders over its Unix socket in the pod's run directory (never the pod network)."""
        from meshproof.load import genclient

        return genclient.in_pod(self, pod.key)

    def sidecar_usage(self, pod: Pod) -> ResourceUsage | None:
        from meshproof.load import procstat
        from meshproof.targets.local.netns import pod_netns

        pid = procstat.envoy_pid(pod_netns(pod.namespace, pod.name))
        s = procstat.sample(pid) if pid is not None else None
        return ResourceUsage(s.cpu_s, s.rss_kb, s.private_kb) if s else None

    def prioritize(self, namespaces: list[str], realtime: bool, nice: int
                   ) -> tuple[str, Callable[[], None]]:
        """Every thread of these namespaces' pods at SCHED_FIFO 1 or ``nice`` (root);
        see ``meshproof.targets.local.sched``."""
        from meshproof.targets.local import netns, sched

        if os.geteuid() != 0 or not (realtime or nice):
            return "", lambda: None
        pids = [pid for ns in netns.list_ours()
                if any(ns.startswith(netns.pod_netns(n, "")) for n in namespaces)
                for pid in netns.pids_in(ns)]
        return sched.prioritize(pids, realtime, nice), lambda: sched.restore(pids)

    def pin_cpu(self, namespaces: list[str], cpu: int) -> int:
        """Cross-vCPU wake-ups cost ~26 us each on these VMs (docs/load.md)."""
        from meshproof.targets.local import netns

        pids = [pid for ns in netns.list_ours()
                if any(ns.startswith(netns.pod_netns(n, "")) for n in namespaces)
                for pid in netns.pids_in(ns)]
        for pid in pids:
            try:
                os.sched_setaffinity(pid, {cpu})
            except OSError:
                pass  # gone meanwhile
        return len(pids)

    def start_process(self, pod: str, name: str, argv: list[str], as_root: bool = True) -> None:
        self._call("start_process", pod=pod, name=name, argv=argv, as_root=as_root)

    def stop_process(self, pod: str, name: str) -> None:
        self._call("stop_process", pod=pod, name=name)


def start_target(mesh: MeshEntry, defect: str = "", *, reviews_replicas: int = 1,
                 progress: Progress | None = None, topology: str = "fixture",
                 detached: bool = False, load_clients: int = 1,
                 wait_s: float | None = None) -> LocalTarget:
    """The registry's entry point: a lab with ``mesh`` installed (``--mesh none``: none).
    One lab per machine: it first queues (bounded) behind a lab that is running. The lab
    dies with the calling process unless ``detached`` (``meshproof up``: a lab that
    outlives the command)."""
    require_root()
    deadline = time.monotonic() + (LAB_WAIT_S if wait_s is None else wait_s)
    while True:  # another run may take the machine between our look and our start
        lock.wait_free(max(0.0, deadline - time.monotonic()),
                       say=lambda m: print(f"\nmeshproof: {m}", flush=True))
        try:
            return LocalTarget.start(mesh=mesh.installs, defect=defect,
                                     reviews_replicas=reviews_replicas, progress=progress,
                                     topology=topology, load_clients=load_clients,
                                     owner_pid=None if detached else CALLER)
        except TargetError as exc:
            if not str(exc).startswith(lock.BUSY) or time.monotonic() > deadline:
                raise


def _pod(d: dict[str, Any]) -> Pod:
    return Pod.from_dict(d)


def stop_lab(timeout: float = 30.0) -> dict[str, list[str]]:
    """Stop the lab if one lives (also one starting or stopping), then sweep what is left.

    Returns what was really removed, by kind (``cleanup.KINDS``): everything
    present when we began and gone now, plus what the lab's own teardown
    says it removed (things made after we looked). A lab's own teardown
    runs first, so counting only what the final sweep found would say
    "removed 0" of a lab that was there.
    """
    require_root()
    before = cleanup.leftovers()
    by_lab: dict[str, list[str]] = {}
    pid = daemon_pid()
    if pid is None:
        holder = lock.holder()
        pid = holder if holder not in (None, -1, os.getpid()) else None
    if pid is not None:
        try:
            answer = call(labd.SOCKET, "down", {"wait_s": timeout}, timeout=timeout + 5)
            if isinstance(answer, dict):
                by_lab = answer.get("removed") or {}
        except (MeshproofError, OSError):
            _signal(pid, signal.SIGTERM)  # starting (no socket yet): SIGTERM makes labd roll back
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    swept = cleanup.sweep()
    return cleanup.merge(cleanup.gone(before, cleanup.leftovers()), by_lab, swept)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # it finished on its own


def _alive(pid: int) -> bool:
    try:  # reap it if it is our child (pytest started it), else just look
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    return Path(f"/proc/{pid}").exists() and not cleanup.is_zombie(pid)
