"""The netns lab: the fixture topology as Linux network namespaces on this host.

``Lab`` is the local target's engine. It owns the fabric, the pods, the
service VIPs, the processes and the captures; it keeps ``lab.json`` under the
run dir current so ``meshproof status`` (and a later sweep) can see what runs.
Every public method takes and returns plain JSON values, so the daemon can
serve it unchanged over a Unix socket (see ``labd``).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from meshproof import paths, podlib
from meshproof.errors import ConfigError, TargetError, UnknownName
from meshproof.targets.local import cleanup, lock, netns, servicenet
from meshproof.targets.local.capture import Capture
from meshproof.jsonline import exchange
from meshproof.targets.local.procs import ProcSpec, Supervisor, tail
from meshproof.targets.local.shell import require_binaries, require_root
from meshproof.targets.model import (NamespaceSpec, Pod, Registry, Service, ServiceSpec,
                                    WorkloadSpec)
from meshproof.topology import ROLES, Topology

#: Ports a sidecar owns inside a meshed pod (Istio's): an app may not use them.
RESERVED_PORTS = frozenset({15000, 15001, 15004, 15006, 15020, 15021, 15053, 15090})
PROXY_UID_BASE = 20000
APP_UID_BASE = 30000
READY_TIMEOUT_S = 20.0
#: Pods per workload: 3 reviews versions x 64 + the rest is ~200 sidecars, the size the
#: scale benchmark (benchmarks/mesh_ab.py --sizes 13,30,63) brings up.
MAX_REPLICAS = 64

#: What the lab honours of the target interface (meshproof.targets.base.CAPABILITIES): all.
CAPABILITIES = ("probe", "probe-tls", "probe-in-sidecar", "put-file", "scale", "kill-pod",
                "components", "block", "capture", "clock", "load", "sidecar-usage", "pin-cpu")

Progress = Callable[[str, int, int], None]


def _quiet(_msg: str, _done: int, _total: int) -> None:
    pass


class Lab:
    def __init__(self) -> None:
        self.namespaces: dict[str, NamespaceSpec] = {}
        self.workloads: dict[str, WorkloadSpec] = {}
        self.services: dict[str, Service] = {}
        self.pods: dict[str, Pod] = {}
        self.pod_index: dict[str, int] = {}
        self.killed: set[str] = set()
        self.blocks: set[tuple[str, str]] = set()
        self.tokens: dict[str, str] = {}
        self.captures: dict[str, Capture] = {}
        self.listeners: list[Callable[[Registry], None]] = []
        #: Called for every new pod after its netns exists, before its app starts
        #: (the mesh's sidecar injection, like a mutating webhook + init container).
        self.injectors: list[Callable[[Pod], None]] = []
        #: The installed mesh (reference_local.ReferenceMeshInstall), if any.
        self.mesh_install: Any = None
        #: A mesh whose processes started before the pods (its installer's ``prestart``).
        self.mesh_prestart: Any = None
        self._next_pod = itertools.count()
        self._next_ordinal: dict[str, itertools.count[int]] = {}
        self._lock = threading.RLock()
        self._rules = ""
        self._lock_fd: int | None = None
        self._probe_agents: dict[tuple[str, int], Path] = {}
        self.sup = Supervisor(self._changed)
        self.started = False

    # ------------------------------------------------------------ lifecycle

    def up(self, topology: Topology, progress: Progress = _quiet,
           after_fabric: Callable[[], object] | None = None) -> None:
        """Bring up ``topology``; on any failure (or Ctrl-C) remove everything made.

        ``after_fabric``: called once the leftovers are swept and the fabric is up,
        before the pods (a mesh starts its own processes there, so they load while
        the pods are created)."""
        validate(topology)
        require_root()
        require_binaries("ip", "iptables-restore", "setpriv", "tcpdump", "tshark")
        if not Path(paths.POD_PYTHON).exists():
            raise TargetError(f"{paths.POD_PYTHON} not found: pods run the stdlib app with it",
                              "run 'make setup' as root (installs Debian's python3)")
        total = 2 + topology.pod_count
        self._lock_fd = lock.acquire()  # before the sweep: never sweep a living lab
        try:
            progress("removing leftovers of earlier runs", 0, total)
            cleanup.sweep()
            self._stage_files()
            netns.create_fabric()
            self.started = True
            progress("fabric up", 1, total)
            if after_fabric is not None:
                after_fabric()
            for ns in topology.namespaces:
                self.namespaces[ns.name] = ns
            for s in topology.services:
                self._add_service(s)
            made = 1
            for w in topology.workloads:
                self.workloads[f"{w.namespace}/{w.name}"] = w
                for _ in range(w.replicas):
                    pod = self._add_pod(w)
                    made += 1
                    progress(f"pod {pod.key} started", made, total)
            self.wait_ready(timeout=READY_TIMEOUT_S)
            progress("all pods ready", total, total)
        except BaseException:
            self.down()
            raise

    def down(self) -> dict[str, list[str]]:
        """Stop everything and remove every resource; safe to call twice."""
        for cap in list(self.captures.values()):
            cap.proc.kill()
        self.captures.clear()
        self.sup.stop_all()
        removed = cleanup.sweep()
        self.started = False
        if self._lock_fd is not None:
            lock.release(self._lock_fd)
            self._lock_fd = None
        return removed

    def _stage_files(self) -> None:
        """Copy the stdlib app and probe where unprivileged pod uids can read them."""
        bindir = paths.RUN_DIR / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        for d in (paths.RUN_DIR, bindir):
            d.chmod(0o755)
        for src in (paths.WORKLOAD_PY, paths.PROBE_PY):
            dst = bindir / src.name
            shutil.copyfile(src, dst)
            dst.chmod(0o644)
        podlib.stage(bindir)  # h2 & co. for HTTP/2 and gRPC (meshproof.podlib)

    # ------------------------------------------------------------ model

    def _add_service(self, spec: ServiceSpec) -> Service:
        key = f"{spec.namespace}/{spec.name}"
        if key in self.services:
            raise ConfigError(f"service {key} already exists")
        svc = Service(spec, netns.vip(len(self.services)))
        self.services[key] = svc
        return svc

    def _hosts(self, namespace: str) -> str:
        lines = ["127.0.0.1 localhost", "::1 localhost"]
        for svc in self.services.values():
            names = [f"{svc.name}.{svc.namespace}", svc.spec.fqdn]
            if svc.namespace == namespace:
                names.insert(0, svc.name)
            lines.append(f"{svc.vip} {' '.join(names)}")
        return "\n".join(lines) + "\n"

    def pod_dir(self, pod: Pod) -> Path:
        return paths.RUN_DIR / "pods" / pod.namespace / pod.name

    def netns_of(self, pod: Pod) -> str:
        return netns.pod_netns(pod.namespace, pod.name)

    def _add_pod(self, w: WorkloadSpec) -> Pod:
        index = next(self._next_pod)
        ordinal = next(self._next_ordinal.setdefault(f"{w.namespace}/{w.name}", itertools.count()))
        name = f"{w.name}-{ordinal}"
        ns = self.namespaces[w.namespace]
        pod = Pod(namespace=w.namespace, name=name, workload=w.name, ip=netns.pod_ip(index),
                  labels={**w.labels, "app": w.app}, service_account=w.sa, meshed=ns.meshed,
                  proxy_uid=PROXY_UID_BASE + index, port=w.port, ports=w.ports,
                  ordinal=ordinal)
        self.pods[pod.key] = pod
        self.pod_index[pod.key] = index
        self.tokens[pod.key] = secrets.token_hex(16)
        d = self.pod_dir(pod)
        (d / "app").mkdir(parents=True, exist_ok=True)
        os.chown(d / "app", self.app_uid(pod), self.app_uid(pod))
        token = d / "token"
        token.write_text(self.tokens[pod.key])
        token.chmod(0o600)
        netns.create_pod(self.netns_of(pod), index, self._hosts(w.namespace))
        for inject in self.injectors:
            inject(pod)
        self._start_app(pod, w)
        return pod

    def app_uid(self, pod: Pod) -> int:
        return APP_UID_BASE + self.pod_index[pod.key]

    def _start_app(self, pod: Pod, w: WorkloadSpec) -> None:
        ready = self.pod_dir(pod) / "app" / "ready"
        ready.unlink(missing_ok=True)
        self.sup.start(ProcSpec(
            name=f"{pod.key}/app", group=pod.key, netns=self.netns_of(pod),
            uid=self.app_uid(pod), log=self.pod_dir(pod) / "app.log",
            argv=[paths.POD_PYTHON, "-u", str(paths.RUN_DIR / "bin" / "workload.py")],
            env={"MESHPROOF_ROLE": w.role, "MESHPROOF_SERVICE": w.app,
                 "MESHPROOF_VERSION": w.version, "MESHPROOF_POD": pod.name,
                 "MESHPROOF_NAMESPACE": pod.namespace, **w.port_env(),
                 "MESHPROOF_READY_FILE": str(ready)},
            ready=lambda pid: _pid_file_is(ready, pid)))

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        names = [n for n, p in self.sup.procs.items() if p.wanted]
        self.sup.wait_ready(names, timeout)
        self._changed()

    # ------------------------------------------------------------ readiness and VIPs

    def _pod_ready(self, pod: Pod) -> bool:
        if pod.key in self.killed:
            return False
        procs = [n for n, p in self.sup.procs.items() if p.spec.group == pod.key and p.wanted]
        return bool(procs) and all(self.sup.is_ready(n) for n in procs)

    def _changed(self) -> None:
        """Recompute readiness, reprogram VIPs, tell listeners (the mesh's control plane)."""
        with self._lock:
            if not self.started:
                return
            for pod in self.pods.values():
                pod.ready = self._pod_ready(pod)
            reg = self.registry_obj()
            rules = servicenet.render(((s, reg.endpoints(s)) for s in reg.services),
                                      ((self.pods[a].ip, self.pods[b].ip)
                                       for a, b in self.blocks))
            if rules != self._rules:
                servicenet.apply(rules)
                self._rules = rules
            self._write_state()
        for listener in list(self.listeners):
            listener(reg)

    def registry_obj(self) -> Registry:
        return Registry(services=list(self.services.values()), pods=list(self.pods.values()))

    def _write_state(self) -> None:
        state = {"pods": self.list_pods(), "services": self.list_services(),
                 "blocks": sorted(self.blocks), "updated": time.time()}
        tmp = paths.RUN_DIR / "lab.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(paths.RUN_DIR / "lab.json")

    # ------------------------------------------------------------ target interface

    def capabilities(self) -> list[str]:
        return list(CAPABILITIES)

    def pod(self, key: str) -> Pod:
        try:
            return self.pods[key]
        except KeyError:
            raise UnknownName(f"no pod {key!r}",
                              f"pods: {', '.join(sorted(self.pods)) or '(none)'}") from None

    def workload_pods(self, key: str) -> list[Pod]:
        """Pods of workload ``ns/name`` (running or killed)."""
        if key not in self.workloads:
            raise UnknownName(f"no workload {key!r}",
                              f"workloads: {', '.join(sorted(self.workloads)) or '(none)'}")
        ns, name = key.split("/", 1)
        return sorted((p for p in self.pods.values()
                       if p.namespace == ns and p.workload == name), key=lambda p: p.name)

    def list_pods(self) -> list[dict[str, Any]]:
        return [asdict(p) | {"key": p.key} for p in self.pods.values()]

    def list_services(self) -> list[dict[str, Any]]:
        return [{"key": s.key, "vip": s.vip, "port": s.spec.port,
                 "target_port": s.spec.target_port, "selector": s.spec.selector,
                 "ports": [asdict(p) for p in s.spec.ports],
                 "endpoints": [p.key for p in self.registry_obj().endpoints(s)]}
                for s in self.services.values()]

    def scale(self, workload: str, replicas: int) -> list[str]:
        if not 0 <= replicas <= MAX_REPLICAS:
            raise ConfigError(f"replicas must be 0..{MAX_REPLICAS}, got {replicas}")
        w = self.workloads.get(workload)
        if w is None:
            self.workload_pods(workload)  # raises UnknownName with the list
            raise AssertionError
        live = [p for p in self.workload_pods(workload) if p.key not in self.killed]
        for pod in live[replicas:]:
            self.delete_pod(pod.key)
        for _ in range(replicas - len(live)):
            self._add_pod(w)
        self.wait_ready()
        return [p.key for p in self.workload_pods(workload)]

    def delete_pod(self, key: str) -> None:
        pod = self.pod(key)
        for name in [n for n, p in self.sup.procs.items() if p.spec.group == key]:
            self.sup.forget(name)
        for agent in [k for k in self._probe_agents if k[0] == key]:
            self._probe_agents.pop(agent)
        netns.delete(self.netns_of(pod))
        shutil.rmtree(self.pod_dir(pod), ignore_errors=True)
        del self.pods[key]
        self.killed.discard(key)
        self.blocks = {b for b in self.blocks if key not in b}
        self._changed()

    def kill_pod(self, key: str) -> None:
        """SIGKILL every process of a pod (a crash): it leaves the endpoints at once."""
        pod = self.pod(key)
        with self._lock:
            self.killed.add(pod.key)
        for name in [n for n, p in self.sup.procs.items() if p.spec.group == key]:
            self.sup.stop(name, kill=True)
        self._changed()

    def revive_pod(self, key: str) -> None:
        """Start a killed pod's processes again and wait until it is ready."""
        pod = self.pod(key)
        names = [n for n, p in self.sup.procs.items() if p.spec.group == key]
        with self._lock:
            self.killed.discard(pod.key)
            for name in names:
                self.sup.procs[name].wanted = True
                self.sup.restart(name)
        self.sup.wait_ready(names, READY_TIMEOUT_S)
        self._changed()

    def stop_component(self, name: str) -> None:
        """Stop a named process (``ns/pod/app``, ``ns/pod/sidecar``, ``controlplane``, ...)."""
        if name not in self.sup.procs:
            raise UnknownName(f"no component {name!r}",
                              f"components: {', '.join(sorted(self.sup.procs))}")
        self.sup.stop(name)
        self._changed()

    def start_component(self, name: str) -> None:
        if name not in self.sup.procs:
            raise UnknownName(f"no component {name!r}",
                              f"components: {', '.join(sorted(self.sup.procs))}")
        self.sup.procs[name].wanted = True
        self.sup.restart(name)
        self.sup.wait_ready([name], READY_TIMEOUT_S)
        self._changed()

    def restarts(self) -> dict[str, int]:
        """Crash restarts per supervised process (planned stops and revives not counted)."""
        return {n: p.restarts for n, p in sorted(self.sup.procs.items()) if p.restarts}

    def components(self) -> dict[str, bool]:
        return {n: self.sup.alive(n) for n in sorted(self.sup.procs)}

    def block(self, a: str, b: str) -> None:
        """Drop all traffic between two pods (both directions) in the fabric."""
        self.pod(a), self.pod(b)
        self.blocks.add(tuple(sorted((a, b))))  # type: ignore[arg-type]
        self._changed()

    def unblock(self, a: str, b: str) -> None:
        self.blocks.discard(tuple(sorted((a, b))))  # type: ignore[arg-type]
        self._changed()

    def put_file(self, key: str, name: str, content: str) -> str:
        """Give pod ``key`` a file its app uid can read (e.g. client certs); returns its path."""
        pod = self.pod(key)
        if "/" in name or name.startswith("."):
            raise ConfigError(f"file name {name!r} must be a plain name")
        d = self.pod_dir(pod) / "files"
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, self.app_uid(pod), self.app_uid(pod))
        f = d / name
        f.write_text(content)
        os.chown(f, self.app_uid(pod), self.app_uid(pod))
        f.chmod(0o600)
        return str(f)

    def mesh_call(self, op: str, args: dict[str, Any]) -> Any:
        """An operation the installed mesh serves in this lab (e.g. the reference mesh's
        impostor identity swap): the lab only relays it, the mesh's installer owns it."""
        if self.mesh_install is None:
            raise TargetError("no mesh is installed in this lab",
                              "start it with a mesh, e.g. 'meshproof up --mesh reference'")
        return self.mesh_install.serve(self, op, args)

    def clock_tick_s(self) -> float:
        """CLOCK_MONOTONIC_COARSE's resolution here (id 6; Python names no constant)."""
        return time.clock_getres(6)

    def capture_start(self, src: str, dst: str) -> str:
        """Capture traffic between ``src`` and ``dst`` (seen on ``dst``'s link)."""
        a, b = self.pod(src), self.pod(dst)
        cid = f"cap-{len(self.captures)}-{secrets.token_hex(3)}"
        d = paths.RUN_DIR / "captures"
        d.mkdir(parents=True, exist_ok=True)
        self.captures[cid] = Capture(netns.veth_name(self.pod_index[b.key]), a.ip, b.ip,
                                     d / f"{cid}.pcap", d / f"{cid}.log")
        return cid

    def capture_stop(self, cid: str, marker: str = "") -> dict[str, Any]:
        cap = self.captures.pop(cid, None)
        if cap is None:
            raise UnknownName(f"no capture {cid!r}")
        return asdict(cap.stop(marker))

    # ------------------------------------------------------------ probes

    def _probe_socket(self, pod: Pod, uid: int) -> Path:
        key = (pod.key, uid)
        if key not in self._probe_agents or not self.sup.alive(f"{pod.key}/probe-{uid}"):
            d = self.pod_dir(pod) / f"probe-{uid}"
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, uid, uid)
            sock, ready = d / "probe.sock", d / "probe.ready"
            sock.unlink(missing_ok=True)
            ready.unlink(missing_ok=True)
            name = f"{pod.key}/probe-{uid}"
            self.sup.forget(name)
            self.sup.start(ProcSpec(
                name=name, group=f"probe:{pod.key}", netns=self.netns_of(pod), uid=uid,
                log=self.pod_dir(pod) / f"probe-{uid}.log", restart=False,
                argv=[paths.POD_PYTHON, "-u", str(paths.RUN_DIR / "bin" / "probe.py"),
                      "--socket", str(sock), "--ready-file", str(ready)],
                # The socket file appears at bind(), before listen(): readiness
                # is the agent's own word, written once it accepts.
                ready=lambda pid: _pid_file_is(ready, pid)))
            self.sup.wait_ready([name], 10)
            self._probe_agents[key] = sock
        return self._probe_agents[key]

    def probe(self, src: str, order: dict[str, Any], as_proxy_uid: bool = False
              ) -> dict[str, Any]:
        """Run a probe order (see fixtures/probe/probe.py) from pod ``src``."""
        pod = self.pod(src)
        if src in self.killed:
            raise TargetError(f"pod {src} is killed: it cannot send probes")
        uid = pod.proxy_uid if as_proxy_uid else self.app_uid(pod)
        sock_path = self._probe_socket(pod, uid)
        budget = float(order.get("deadline_s", 60)) + float(order.get("timeout_s", 5)) + 10
        try:
            answer = exchange(sock_path, order, budget, f"probe agent in {src}")
        except OSError as exc:
            log = self.pod_dir(pod) / f"probe-{uid}.log"
            raise TargetError(f"probe agent in {src} unreachable: {exc}\n{tail(log)}",
                              f"its log: {log}") from exc
        if "error" in answer:
            raise ConfigError(f"probe order rejected by {src}: {answer['error']}")
        return answer

    # ------------------------------------------------------------ extra processes

    def start_process(self, pod: str, name: str, argv: list[str], as_root: bool = True) -> None:
        """Run ``argv`` inside pod ``pod``'s netns (e.g. a load generator), not restarted.

        As root by default: root's traffic is captured by the mesh like the app's
        (only the proxy uid is exempt), and root can read the harness's venv.
        Its own group keeps it out of the pod's readiness.
        """
        p = self.pod(pod)
        if p.key in self.killed:
            raise TargetError(f"pod {pod} is killed: it cannot run processes")
        if not name or "/" in name:
            raise ConfigError(f"bad process name {name!r}", "use a short name without '/'")
        full = f"{p.key}/proc/{name}"
        self.sup.forget(full)
        self.sup.start(ProcSpec(
            name=full, group=f"proc:{p.key}", netns=self.netns_of(p),
            uid=None if as_root else self.app_uid(p), argv=list(argv), restart=False,
            log=self.pod_dir(p) / f"proc-{name}.log"))

    def stop_process(self, pod: str, name: str) -> None:
        """Stop a process started by ``start_process`` (a no-op if it is gone)."""
        self.sup.forget(f"{self.pod(pod).key}/proc/{name}")


def _pid_file_is(path: Path, pid: int) -> bool:
    try:
        return path.read_text().strip() == str(pid)
    except OSError:
        return False


def validate(t: Topology) -> None:
    """Reject a bad topology before anything is made."""
    ns_names = {n.name for n in t.namespaces}
    seen: set[str] = set()
    for w in t.workloads:
        key = f"{w.namespace}/{w.name}"
        if w.namespace not in ns_names:
            raise ConfigError(f"workload {key}: unknown namespace {w.namespace!r}")
        if w.role not in ROLES:
            raise ConfigError(f"workload {key}: unknown role {w.role!r}",
                              f"roles: {', '.join(ROLES)}")
        if key in seen:
            raise ConfigError(f"workload {key} is defined twice")
        seen.add(key)
        for port in (p.port for p in w.ports):
            if port in RESERVED_PORTS or not 1 <= port <= 65535:
                raise ConfigError(
                    f"workload {key}: port {port} clashes with the sidecar's ports "
                    f"{sorted(RESERVED_PORTS)}" if port in RESERVED_PORTS
                    else f"workload {key}: port {port} out of range",
                    "choose another port (the fixture app uses 9080, 9081, 7070, 9090)")
        if not 0 <= w.replicas <= MAX_REPLICAS:
            raise ConfigError(f"workload {key}: replicas must be 0..{MAX_REPLICAS}")
    svc_seen: set[str] = set()
    for s in t.services:
        key = f"{s.namespace}/{s.name}"
        if s.namespace not in ns_names:
            raise ConfigError(f"service {key}: unknown namespace {s.namespace!r}")
        if key in svc_seen:
            raise ConfigError(f"service {key} is defined twice")
        svc_seen.add(key)
