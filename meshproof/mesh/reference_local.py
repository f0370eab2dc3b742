"""Installing the reference mesh into the local lab: CA, control plane, sidecars, capture.

What Istio's installer, injector and init container do, for the netns lab:
- the CA and the control plane run as host processes, reachable over Unix
  sockets only (never over the pod network they program);
- every pod of a meshed namespace gets, before its app starts, the
  istio-init nat rules (inbound TCP -> 15006, outbound -> 15001, the pod's
  proxy uid excluded), its identity served by the node's agent (one process
  for the lab, a socket and a token per pod: ``refmesh.nodeagent``) and an
  Envoy running as the pod's own proxy uid inside the pod's netns;
- every change in the lab's registry (pods, readiness) is pushed to the
  control plane, like a controller watching the kube API.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from meshproof.errors import TargetError
from meshproof.targets.local.lab import Lab
from meshproof.targets.local.procs import ProcSpec
from meshproof.targets.local.shell import run
from meshproof.mesh import refpaths
from meshproof.mesh.refpaths import (ADS_SOCKET, AGENT_SOCKET, CA_SOCKET, CERT_TTL,
                                    CP_API_SOCKET, MESH_DIR, TOKENS)
from meshproof.targets.model import Pod, Registry

OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
READY_TIMEOUT_S = 30.0
#: Sidecars injected at once at install (threads: the work is mostly waiting on processes).
INJECT_WORKERS = 8
#: Defects of the lab's wiring rather than of xDS (see ``lab_defect``).
LAB_DEFECTS = frozenset({"fail-open-without-sidecar", "config-lost-on-cp-outage"})
#: Defects of the identity agent (one flag each on its command line).
AGENT_DEFECTS = {"rotation-stopped": "--no-rotate",
                 "agent-drops-cert-on-ca-outage": "--drop-cert-on-ca-outage"}
#: Defects of the CA (one flag each on its command line).
CA_DEFECTS = {"ca-signs-any": "--sign-any"}
#: Defects of the control plane's bookkeeping (one flag each on its command line).
CP_DEFECTS = {"acked-on-send": "--ack-on-send"}

Progress = Callable[[str, int, int], None]


def sidecar_dir(pod: Pod) -> Path:
    return refpaths.sidecar_dir(pod.namespace, pod.name)


def capture_rules(proxy_uid: int) -> str:
    """The istio-init nat ruleset for one pod (applied atomically, netns-local)."""
    return "\n".join([
        "*nat",
        ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]",
        ":MESH_INBOUND - [0:0]", ":MESH_OUTPUT - [0:0]",
        "-A PREROUTING -p tcp -j MESH_INBOUND",
        f"-A MESH_INBOUND -p tcp -j REDIRECT --to-ports {INBOUND_PORT}",
        "-A OUTPUT -p tcp -j MESH_OUTPUT",
        # The proxy's own traffic (to apps and to other pods) is not captured again.
        f"-A MESH_OUTPUT -m owner --uid-owner {proxy_uid} -j RETURN",
        "-A MESH_OUTPUT -d 127.0.0.1/32 -j RETURN",
        f"-A MESH_OUTPUT -p tcp -j REDIRECT --to-ports {OUTBOUND_PORT}",
        "COMMIT", ""])


class ReferenceMeshInstall:
    """The reference mesh's processes in one lab, and the registry sync."""

    def __init__(self, lab: Lab, defect: str = "") -> None:
        self.lab = lab
        self.defect = defect
        self._last_registry = ""
        self._tokens_lock = threading.Lock()
        self._started = False
        from refmesh.envoy_binary import staged_envoy

        self.envoy = str(staged_envoy())

    # ---------------------------------------------------------- control plane and CA

    def start_processes(self) -> None:
        """Start the CA, the control plane and the node agent without waiting for them
        (``prestart``: their interpreters load while the lab creates its pods)."""
        if self._started:
            return
        self._started = True
        MESH_DIR.mkdir(parents=True, exist_ok=True)
        MESH_DIR.chmod(0o755)
        self.write_tokens()
        py = sys.executable
        self.lab.sup.start(ProcSpec(
            name="ca", group="mesh", log=MESH_DIR / "ca.log",
            argv=[py, "-m", "refmesh.ca", "--state-dir", str(MESH_DIR / "ca"),
                  "--socket", str(CA_SOCKET), "--tokens", str(TOKENS),
                  "--ttl-file", str(CERT_TTL),
                  *([CA_DEFECTS[self.defect]] if self.defect in CA_DEFECTS else [])],
            ready=lambda _pid: _healthy(CA_SOCKET)))
        self.lab.sup.start(ProcSpec(
            name="controlplane", group="mesh", log=MESH_DIR / "controlplane.log",
            argv=[py, "-m", "refmesh.controlplane", "--ads-socket", str(ADS_SOCKET),
                  "--api-socket", str(CP_API_SOCKET), "--state-dir", str(MESH_DIR / "cp"),
                  *([CP_DEFECTS[self.defect]] if self.defect in CP_DEFECTS else [])],
            ready=lambda _pid: _healthy(CP_API_SOCKET)))
        self.lab.sup.start(ProcSpec(
            name="agent", group="mesh", log=MESH_DIR / "agent.log",
            argv=[py, "-m", "refmesh.nodeagent", "--ca-socket", str(CA_SOCKET),
                  "--api-socket", str(AGENT_SOCKET),
                  *([AGENT_DEFECTS[self.defect]] if self.defect in AGENT_DEFECTS else [])],
            ready=lambda _pid: _healthy(AGENT_SOCKET)))

    def start_control(self) -> None:
        self.start_processes()
        self.lab.sup.wait_ready(["ca", "controlplane", "agent"], READY_TIMEOUT_S)
        self.program_defect()

    def program_defect(self) -> None:
        """Hand an xDS-level defect to the control plane as a state option (before any
        sidecar connects, so no sidecar ever runs the healthy config); a restarted control
        plane restores it from its state dir. Lab-level defects are not the control plane's."""
        from refmesh import unixhttp
        from refmesh.xds.defects import XDS_DEFECTS

        wanted = [self.defect] if self.defect in XDS_DEFECTS else []
        _, state = unixhttp.request_json(CP_API_SOCKET, "GET", "/state", timeout=5)
        options = dict(state.get("options") or {})
        if sorted(options.get("defects") or []) == wanted:
            return
        options["defects"] = wanted
        status, answer = unixhttp.request_json(CP_API_SOCKET, "PUT", "/state",
                                               {"options": options}, timeout=5)
        if status >= 400:
            raise TargetError(f"control plane refused defect {self.defect!r}: {answer}")

    def write_tokens(self) -> None:
        """The CA's token book, replaced atomically. Under a lock: the registry listener and
        a pod's injection both write it, and two writers sharing one temp file made one
        fail (FileNotFoundError on the rename) under load."""
        with self._tokens_lock:
            book = {tok: {"namespace": self.lab.pods[k].namespace,
                          "service_account": self.lab.pods[k].service_account}
                    for k, tok in dict(self.lab.tokens).items() if k in self.lab.pods}
            tmp = TOKENS.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(book))
            tmp.replace(TOKENS)

    def sync(self, reg: Registry) -> None:
        """Lab listener: push the registry to the control plane when it changed."""
        from refmesh import unixhttp
        from refmesh.state import registry_to_dict

        body = registry_to_dict(reg)
        text = json.dumps(body, sort_keys=True)
        if text == self._last_registry:
            return
        self._forget_identities({p.key for p in reg.pods if p.meshed})
        self.write_tokens()
        if not CP_API_SOCKET.exists():
            return  # control plane down (chaos): it gets the registry when back
        try:
            unixhttp.request_json(CP_API_SOCKET, "PUT", "/registry", body, timeout=5)
            self._last_registry = text
        except Exception as exc:  # an outage must not break the lab's bookkeeping
            print(f"mesh: registry push failed: {exc}", flush=True)

    # ---------------------------------------------------------- sidecars

    def inject(self, pod: Pod, tokens: bool = True) -> None:
        """Capture rules, identity and Envoy for one pod of a meshed namespace.

        ``tokens``: write the CA's token book first (a pod added later); the
        installer writes it once for all pods and injects them in parallel."""
        if not pod.meshed:
            return
        from refmesh.admin import EnvoyAdmin
        from refmesh.bootstrap import EnvoyCommand, SidecarPaths, bootstrap, write_bootstrap

        d = sidecar_dir(pod)
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
        os.chown(d, pod.proxy_uid, pod.proxy_uid)  # Envoy binds its admin socket here
        netns = self.lab.netns_of(pod)
        run(["iptables-restore", "--noflush"], netns=netns, input=capture_rules(pod.proxy_uid))
        sds, admin = d / "sds.sock", d / "admin.sock"
        # The CA must know the pod's token before its agent asks (a scaled-up pod's agent
        # was refused "unknown bootstrap token" until the next registry push).
        if tokens:
            self.write_tokens()
        self.serve_identity(pod, pod)
        cfg = write_bootstrap(d / "envoy.json", bootstrap(
            pod.key, SidecarPaths(str(ADS_SOCKET), str(sds), str(admin)),
            cluster=f"{pod.workload}.{pod.namespace}"))
        envoy = EnvoyCommand(self.envoy, str(cfg), concurrency=1)
        self.lab.sup.start(ProcSpec(
            name=f"{pod.key}/sidecar", group=pod.key, log=d / "envoy.log", netns=netns,
            uid=pod.proxy_uid, argv=envoy.argv(),
            ready=lambda _pid: admin.exists() and _envoy_live(EnvoyAdmin(admin, timeout=1))))

    def serve_identity(self, pod: Pod, identity: Pod) -> None:
        """Have the node agent serve ``identity``'s SVID, got with ``identity``'s token, on
        ``pod``'s SDS socket (``pod`` itself normally; another pod for an impostor)."""
        from refmesh import unixhttp

        d = sidecar_dir(pod)
        spec = {"namespace": identity.namespace, "service_account": identity.service_account,
                "token_file": str(self.lab.pod_dir(identity) / "token"),
                "sds_socket": str(d / "sds.sock"), "key_dir": str(d / "keys"),
                "proxy_uid": pod.proxy_uid}
        status, answer = unixhttp.request_json(AGENT_SOCKET, "PUT", f"/pods/{pod.key}", spec,
                                               timeout=10)
        if status != 200:
            raise TargetError(f"the node agent refused {pod.key}: {answer}",
                              f"see {MESH_DIR / 'agent.log'}")

    def _forget_identities(self, keep: set[str]) -> None:
        """The node agent stops serving pods the registry no longer has (scaled down)."""
        from refmesh import unixhttp

        try:
            _, served = unixhttp.request_json(AGENT_SOCKET, "GET", "/pods", timeout=5)
            for key in set(served) - keep if isinstance(served, dict) else ():
                unixhttp.request_json(AGENT_SOCKET, "DELETE", f"/pods/{key}", timeout=5)
        except OSError:
            pass  # the agent is down (chaos): it has nothing to forget

    def swap_identity(self, pod: Pod, identity: Pod) -> None:
        """Serve ``identity``'s SVID (got with its token) on ``pod``'s SDS socket: its Envoy
        then serves a valid mesh certificate for another workload (an impostor), until
        swapped back."""
        from refmesh.admin import EnvoyAdmin

        (sidecar_dir(pod) / "keys" / "cert.pem").unlink(missing_ok=True)
        self.serve_identity(pod, identity)
        admin = EnvoyAdmin(sidecar_dir(pod) / "admin.sock", timeout=2)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while identity.identity not in admin.cert_uris():  # Envoy re-fetches over SDS
            if time.monotonic() > deadline:
                raise TargetError(f"{pod.key}'s Envoy did not take {identity.identity}")
            time.sleep(0.05)

    def set_cert_ttl(self, ttl_s: int | None, owner_pid: int = 0) -> dict[str, Any]:
        """The mesh's workload-certificate TTL (an install setting, like istiod's
        DEFAULT_WORKLOAD_CERT_TTL): ``ttl_s`` in force, or None for the default back.
        Rolled out as an operator would: the CA takes the setting (the record file,
        which a restarted CA re-reads), every agent renews at once (SIGHUP), and this
        returns once every sidecar's Envoy serves a certificate issued under it."""
        try:
            old = int(json.loads(CERT_TTL.read_text())["ttl_s"])
        except (OSError, ValueError, KeyError, TypeError):
            old = 0
        if ttl_s is not None:
            tmp = CERT_TTL.with_suffix(".tmp")
            tmp.write_text(json.dumps({"ttl_s": int(ttl_s), "owner_pid": int(owner_pid),
                                       "since": time.time()}))
            tmp.chmod(0o600)
            tmp.replace(CERT_TTL)
        else:
            CERT_TTL.unlink(missing_ok=True)
        pods = [p for p in self.lab.pods.values() if p.meshed and p.ready]
        before = {p.key: _svid_status(p).get("generation", 0) for p in pods}
        self.renew_certs()
        deadline = time.monotonic() + READY_TIMEOUT_S
        # A renewal already in flight when the setting changed may land first: the wait
        # is for a certificate whose lifetime fits the new setting (1 s: X.509 seconds).
        if ttl_s is not None:
            def fits(left: float) -> bool:
                return left <= ttl_s + 1
        else:
            def fits(left: float) -> bool:
                return left > old + 1
        for p in pods:
            self._wait_rotated(p, before[p.key], fits, deadline)
        return {"ttl_s": ttl_s, "pods": len(pods)}

    def _wait_rotated(self, pod: Pod, generation: int, fits: Callable[[float], bool],
                      deadline: float) -> None:
        """Until ``pod``'s agent issued past ``generation`` a certificate whose seconds
        left ``fit`` the setting, and its Envoy serves that certificate."""
        from refmesh.admin import EnvoyAdmin

        admin = EnvoyAdmin(sidecar_dir(pod) / "admin.sock", timeout=2)
        while True:
            st = _svid_status(pod)
            left = _seconds_left(str(st.get("not_after", "")))
            if st.get("generation", 0) > generation and left is not None and fits(left) \
                    and str(st.get("serial", "")).lstrip("0") in admin.cert_serials():
                return
            if time.monotonic() > deadline:
                raise TargetError(f"{pod.key}'s agent did not renew its certificate within "
                                  f"{READY_TIMEOUT_S:.0f}s (svid {st})",
                                  f"see {MESH_DIR / 'agent.log'} and the CA's log")
            time.sleep(0.05)

    def serve(self, lab: Lab, op: str, args: dict[str, Any]) -> Any:
        """Operations the adapter asks of the installed mesh through ``Lab.mesh_call``."""
        if op == "renew_certs":
            return self.renew_certs()
        if op == "set_defect":
            return self.set_defect(str(args.get("defect") or ""))
        if op == "swap_identity":
            self.swap_identity(lab.pod(str(args["key"])), lab.pod(str(args["as_pod"])))
            return None
        if op == "set_cert_ttl":
            ttl = args.get("ttl_s")
            return self.set_cert_ttl(None if ttl is None else int(ttl),
                                     int(args.get("owner_pid") or 0))
        raise TargetError(f"the reference mesh's installer has no operation {op!r}",
                          "operations: renew_certs, set_defect, swap_identity, set_cert_ttl")

    # ---------------------------------------------------------- lab-level defects (negative
    # controls for the chaos experiments; each touches only what its name says)

    def renew_certs(self) -> int:
        """Every ready pod's identity renews now (SIGHUP to the node agent, which renews
        all of them), without waiting for the result: the CA-outage experiment makes each
        renewal fail at a known moment. Returns how many pods were asked for."""
        proc = self.lab.sup.procs.get("agent")
        if proc is None or not self.lab.sup.is_ready("agent"):
            return 0
        os.kill(proc.popen.pid, signal.SIGHUP)
        return len([p for p in self.lab.pods.values() if p.meshed and p.ready])

    def set_defect(self, defect: str) -> str:
        """Switch the running lab to another defect ("" = healthy), as a lab brought up
        with ``--defect`` has it, so the CI tier's negative controls share one bring-up
        (a lab per defect is the nightly matrix's). A lab-level defect: its listener in
        place, or gone and its bypass rules removed. An xDS defect (the route
        ones a check declares, tests/negative/test_live_defects.py): the control plane's
        option, pushed to every sidecar; callers still wait for their own config to be
        programmed, which then carries it. Returns the defect now in force."""
        from meshproof.errors import ConfigError
        from refmesh.xds.defects import XDS_DEFECTS

        if defect and defect not in LAB_DEFECTS and defect not in XDS_DEFECTS:
            raise ConfigError(f"{defect!r} cannot be switched on a running lab",
                              f"lab-level: {', '.join(sorted(LAB_DEFECTS))}; or an xDS "
                              "defect (refmesh.xds.defects)")
        lab_level = defect if defect in LAB_DEFECTS else ""
        listening = self.lab_defect in self.lab.listeners
        if lab_level and not listening:
            self.lab.listeners.append(self.lab_defect)
        elif not lab_level and listening:
            self.lab.listeners.remove(self.lab_defect)
        self.defect = defect
        if not lab_level:
            for key in list(getattr(self, "_bypassed", set())):
                pod = self.lab.pods.get(key)
                if pod is not None:
                    rule = ["MESH_INBOUND", "-p", "tcp", "--dport", str(pod.port), "-j", "RETURN"]
                    run(["iptables", "-w", "5", "-t", "nat", "-D", *rule],
                        netns=self.lab.netns_of(pod), check=False)
                self._bypassed.discard(key)
        self.program_defect()  # the xDS defect, or none
        return self.defect

    def lab_defect(self, reg: Registry) -> None:
        """Lab listener, registered only under a lab-level defect."""
        if self.defect == "fail-open-without-sidecar":
            self._fail_open()
        elif self.defect == "config-lost-on-cp-outage":
            self._config_lost_on_cp_outage()

    def _fail_open(self) -> None:
        """``fail-open-without-sidecar``: while a pod's sidecar is not running, its capture
        rules let inbound traffic to the app port through to the app (plaintext, no
        policy), as a CNI or init script that "fails open" would."""
        bypassed: set[str] = getattr(self, "_bypassed", set())
        self._bypassed = bypassed
        for pod in [p for p in self.lab.pods.values() if p.meshed]:
            down = not self.lab.sup.alive(f"{pod.key}/sidecar")
            if down == (pod.key in bypassed):
                continue
            rule = ["MESH_INBOUND", "-p", "tcp", "--dport", str(pod.port), "-j", "RETURN"]
            argv = (["iptables", "-w", "5", "-t", "nat", "-I", rule[0], "1", *rule[1:]] if down
                    else ["iptables", "-w", "5", "-t", "nat", "-D", *rule])
            run(argv, netns=self.lab.netns_of(pod), check=False)
            (bypassed.add if down else bypassed.discard)(pod.key)

    def _config_lost_on_cp_outage(self) -> None:
        """``config-lost-on-cp-outage``: when the control plane goes away, every sidecar is
        restarted, so it comes back with its bootstrap only (no listeners, no clusters)
        until the control plane returns: the dynamic config is lost."""
        cp_up = self.lab.sup.alive("controlplane")
        if cp_up:
            self._cp_loss_handled = False
            return
        if getattr(self, "_cp_loss_handled", False):
            return
        self._cp_loss_handled = True
        for pod in [p for p in self.lab.pods.values() if p.meshed]:
            name = f"{pod.key}/sidecar"
            if self.lab.sup.alive(name):
                self.lab.sup.restart(name)

    def install(self, progress: Progress) -> None:
        self.start_control()
        self.lab.mesh_install = self
        self.lab.listeners.append(self.sync)
        if self.defect in LAB_DEFECTS:
            self.lab.listeners.append(self.lab_defect)
        self.lab.injectors.append(self.inject)
        self.sync(self.lab.registry_obj())
        pods = [p for p in self.lab.pods.values() if p.meshed]
        total = len(pods) + 1
        progress("CA, control plane and node agent up", 1, total)
        self.write_tokens()
        # In parallel: each injection is mostly waiting (iptables-restore in the pod's netns,
        # the agent's answer, process start), and the sidecars' start-up overlaps.
        done = iter(range(2, total + 1))
        with ThreadPoolExecutor(max_workers=INJECT_WORKERS) as pool:
            for pod in pool.map(lambda p: (self.inject(p, tokens=False), p)[1], pods):
                progress(f"sidecar injected into {pod.key}", next(done), total)
        self.lab.wait_ready(timeout=READY_TIMEOUT_S)
        progress("all sidecars ready", total, total)


def _svid_status(pod: Pod) -> dict[str, Any]:
    """The agent's ``svid.json`` (generation, serial, not_after), {} before the first."""
    try:
        return dict(json.loads((sidecar_dir(pod) / "keys" / "svid.json").read_text()))
    except (OSError, ValueError):
        return {}


def _seconds_left(not_after: str) -> float | None:
    import datetime as dt

    try:
        end = dt.datetime.fromisoformat(not_after)
    except ValueError:
        return None
    return (end - dt.datetime.now(dt.timezone.utc)).total_seconds()


def _healthy(sock: Path) -> bool:
    from refmesh import unixhttp

    if not sock.exists():
        return False
    try:
        unixhttp.request_json(sock, "GET", "/healthz", timeout=1)
        return True
    except Exception:
        return False


def _envoy_live(admin: Any) -> bool:
    try:
        return bool(admin.ready()) and admin.warming() == 0
    except Exception:
        return False


def prestart(lab: Lab, defect: str = "") -> ReferenceMeshInstall:
    """Start the mesh's own processes as soon as the lab's fabric is up (labd calls this
    before it creates the pods): their start-up (Python, gRPC, protos) then overlaps the
    pods' instead of following it. :func:`install` finishes the job."""
    if defect:
        from meshproof.mesh import defects

        defects.require(defect)
    mesh = ReferenceMeshInstall(lab, defect)
    mesh.start_processes()
    lab.mesh_prestart = mesh
    return mesh


def install(lab: Lab, defect: str = "", progress: Progress = lambda m, d, t: None
            ) -> ReferenceMeshInstall:
    """Install the reference mesh into a running lab (labd calls this for --mesh reference)."""
    if defect:
        from meshproof.mesh import defects

        defects.require(defect)
    early = getattr(lab, "mesh_prestart", None)
    mesh = early if isinstance(early, ReferenceMeshInstall) and early.defect == defect \
        else ReferenceMeshInstall(lab, defect)
    mesh.install(progress)
    return mesh
