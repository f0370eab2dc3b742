"""The kube target: the fixture topology on any cluster, through the Target interface.

``start_target`` runs preflight first (reachable, version, every permission,
the mesh's control plane) and creates nothing if it fails; then removes a
killed run's leftovers, creates the topology, and waits (bounded) for every
pod. Anything going wrong after the first object exists, Ctrl-C included,
removes the run's objects by label before the error goes on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from meshproof.errors import ConfigError, TargetError, UnknownName
from meshproof.targets.base import LoadGenerator, Target
from meshproof.targets.kube import apply, capabilities, cleanup, config, execprobe, manifests
from meshproof.targets.kube import preflight as pre
from meshproof.targets.kube.config import (MANAGED_LABEL, OWNER_ANNOTATION, RUN_LABEL,
                                           KubeOptions, MeshProfile)
from meshproof.targets.kube.manifests import WORKLOAD_LABEL
from meshproof.targets.kube.rest import KubeApiError, Rest
from meshproof.targets.model import (APP_PROTOCOLS, CaptureSummary, Pod, ProbeOrder,
                                     ProbeResult, ServiceInfo, ServicePort)
from meshproof.topology import Topology, fixture_topology, named

REPLICAS_BEFORE = "meshproof.io/replicas-before"
CLOCK_CMD = ["python3", "-c",
             "import time; print(time.clock_getres(getattr(time, 'CLOCK_MONOTONIC_COARSE', 6)))"]


class KubeTarget(Target):
    name = "kube"

    def __init__(self, rest: Rest, opts: KubeOptions, profile: MeshProfile,
                 topology: Topology, pf: pre.Preflight) -> None:
        self.rest = rest
        self.opts = opts
        self.profile = profile
        self.topology = topology
        self.preflight = pf
        self.run_id = opts.run_id
        self._caps, self.missing = capabilities.decide(
            pf.denied_optional, component_outage=opts.allow_component_outage,
            has_control_plane=bool(profile.control_plane_namespace),
            chaos_mesh=pf.chaos_mesh, chaos_mesh_why=pf.chaos_mesh_why)
        #: how ``block`` partitions two pods (docs/kube.md, "Capabilities")
        self.block_method = "networkchaos" if pf.chaos_mesh else "networkpolicy"
        # Without a mesh nothing is injected: no pod is meshed whatever its namespace.
        self._meshed = {ns.name: ns.meshed and profile.name != "none"
                        for ns in topology.namespaces}
        self._ordinals: dict[tuple[str, str], int] = {}
        self._workload_of: dict[tuple[str, str], str] = {}
        self._blocks: dict[tuple[str, str], str] = {}
        self._tick: float | None = None
        self._down = False

    # ------------------------------------------------------------ declarations

    def capabilities(self) -> frozenset[str]:
        return self._caps

    def missing_reason(self, capability: str) -> str:
        return self.missing.get(capability, "")

    def info(self) -> dict[str, Any]:
        return {"target": "kube", "run": self.run_id, "cluster": self.opts.where(),
                "server_version": self.preflight.server_version, "mesh": self.profile.name,
                "image": self.opts.image, "missing": dict(self.missing)}

    # ------------------------------------------------------------ what runs

    def _raw_pods(self) -> list[dict[str, Any]]:
        out = []
        for ns in self._meshed:
            out += [p for p in self.rest.list("Pod", ns, f"{RUN_LABEL}={self.run_id}")
                    if not p["metadata"].get("deletionTimestamp")
                    and WORKLOAD_LABEL in (p["metadata"].get("labels") or {})]
        return out

    def pods(self) -> list[Pod]:
        raw = self._raw_pods()
        alive = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in raw}
        for key in [k for k in self._ordinals if k not in alive]:
            del self._ordinals[key]
        raw.sort(key=lambda p: (str(p["metadata"].get("creationTimestamp", "")),
                                p["metadata"]["name"]))
        out = []
        for p in raw:
            kw = apply.as_pod_kw(p)
            wl = kw["labels"][WORKLOAD_LABEL]
            key = (kw["namespace"], kw["name"])
            if key not in self._ordinals:
                taken = {o for k, o in self._ordinals.items()
                         if k[0] == kw["namespace"] and self._workload_of.get(k) == wl}
                self._ordinals[key] = next(i for i in range(len(taken) + 1) if i not in taken)
                self._workload_of[key] = wl
            out.append(Pod(workload=wl, meshed=self._meshed.get(kw["namespace"], False),
                           ordinal=self._ordinals[key], **kw))
        return sorted(out, key=lambda p: (p.namespace, p.workload, p.ordinal))

    def services(self) -> list[ServiceInfo]:
        """Each run Service with its ports; a port's protocol from ``appProtocol``, else
        its name's prefix (Istio's rule), else ``tcp``."""
        pods = self.pods()
        out = []
        for ns in self._meshed:
            for s in self.rest.list("Service", ns, f"{RUN_LABEL}={self.run_id}"):
                spec = s.get("spec") or {}
                port = (spec.get("ports") or [{}])[0]
                sel = dict(spec.get("selector") or {})
                eps = tuple(p.name for p in pods if p.namespace == ns and p.ready
                            and all(p.labels.get(k) == v for k, v in sel.items()))
                out.append(ServiceInfo(ns, s["metadata"]["name"], spec.get("clusterIP", ""),
                                       int(port.get("port", 80)),
                                       int(port.get("targetPort", 9080)), sel, eps,
                                       ports=service_ports(spec)))
        return out

    # ------------------------------------------------------------ traffic

    def probe(self, src: Pod, order: ProbeOrder, *, in_sidecar: bool = False
              ) -> list[ProbeResult]:
        if in_sidecar:
            raise TargetError(self.missing["probe-in-sidecar"])
        return execprobe.probe(self.rest.api, src.namespace, src.name, order)

    def load_generator(self, pod: Pod) -> LoadGenerator:
        from meshproof.targets.kube.loadgen import ExecLoadGenerator

        return ExecLoadGenerator(self.rest.api, pod.namespace, pod.name)

    def pin_cpu(self, namespaces: list[str], cpu: int) -> int:
        raise TargetError(self.missing["pin-cpu"])

    def put_file(self, pod: Pod, name: str, content: str) -> str:
        if "/" in name or name in ("", ".", ".."):
            raise ConfigError(f"file name {name!r} must be a plain name")
        path = f"/tmp/meshproof/{name}"
        cmd = ["python3", "-c", "import json,os,sys; os.makedirs('/tmp/meshproof', exist_ok=True); "
               f"open({path!r}, 'w').write(json.loads(sys.stdin.readline()))"]
        out, err, rc = execprobe.exec_in(self.rest.api, pod.namespace, pod.name, cmd,
                                         json.dumps(content) + "\n", timeout_s=30)
        if rc != 0:
            raise TargetError(f"could not write {path} in {pod.key}: {err[-200:]}")
        return path

    # ------------------------------------------------------------ faults

    def _wait_workloads(self, want: dict[tuple[str, str], int]) -> None:
        apply.wait_ready(self.rest, self.run_id, want, self.opts.ready_timeout_s)

    def scale(self, namespace: str, workload: str, replicas: int) -> list[Pod]:
        if not any((w.namespace, w.name) == (namespace, workload)
                   for w in self.topology.workloads):
            raise UnknownName(f"no workload {namespace}/{workload}")
        self.rest.patch("Deployment", namespace, workload, {"spec": {"replicas": replicas}},
                        sub="scale")
        self._wait_workloads({(namespace, workload): replicas})
        return self.workload_pods(namespace, workload)

    def kill_pod(self, pod: Pod) -> None:
        self.rest.call("DELETE", f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}",
                       {"gracePeriodSeconds": 0})

    def revive_pod(self, pod: Pod) -> None:
        """The Deployment makes a new pod; wait until the workload is whole again (the new
        pod takes the killed one's ordinal)."""
        want = len([p for p in self.topology.workloads
                    if (p.namespace, p.name) == (pod.namespace, pod.workload)])
        dep = self.rest.get("Deployment", pod.namespace, pod.workload)
        want = int((dep.get("spec") or {}).get("replicas", want))
        self._wait_workloads({(pod.namespace, pod.workload): want})

    def components(self) -> dict[str, bool]:
        if "components" not in self._caps:
            return {}
        deps = self.rest.list("Deployment", self.profile.control_plane_namespace,
                              self.profile.control_plane_selector)
        return {"controlplane": any(int((d.get("status") or {}).get("readyReplicas") or 0)
                                    for d in deps)}

    def _control_plane(self) -> list[dict[str, Any]]:
        if "components" not in self._caps:
            raise TargetError(self.missing.get("components", "no components"))
        return self.rest.list("Deployment", self.profile.control_plane_namespace,
                              self.profile.control_plane_selector)

    def stop_component(self, name: str) -> None:
        if "components" not in self._caps:  # the opt-in flag was not given: never scale down
            raise TargetError(f"not stopping {name}: {self.missing['components']}")
        if name != "controlplane":
            raise UnknownName(f"no component {name!r} on the kube target", "components: "
                              "controlplane")
        for d in self._control_plane():
            n = d["metadata"]["name"]
            before = str((d.get("spec") or {}).get("replicas", 1))
            # Recorded on the object: a killed run's 'down' scales it back.
            self.rest.patch("Deployment", self.profile.control_plane_namespace, n,
                            {"metadata": {"annotations": {REPLICAS_BEFORE: before}}})
            self.rest.patch("Deployment", self.profile.control_plane_namespace, n,
                            {"spec": {"replicas": 0}}, sub="scale")

    def start_component(self, name: str) -> None:
        if name != "controlplane":
            raise UnknownName(f"no component {name!r} on the kube target")
        self._control_plane()
        restore_control_plane(self.rest, self.profile, wait_s=self.opts.ready_timeout_s)

    def restarts(self) -> dict[str, int]:
        out = {}
        for p in self._raw_pods():
            for cs in (p.get("status") or {}).get("containerStatuses") or ():
                if cs.get("restartCount"):
                    out[f"{p['metadata']['namespace']}/{p['metadata']['name']}/"
                        f"{cs.get('name')}"] = int(cs["restartCount"])
        return out

    def block(self, a: Pod, b: Pod) -> None:
        if "block" not in self._caps:
            raise TargetError(self.missing["block"])
        bid = f"{len(self._blocks) + 1}{self.run_id[-4:]}"
        if self.block_method == "networkchaos":
            self.rest.create(manifests.network_chaos(bid, (a.namespace, a.name),
                                                     (b.namespace, b.name), self.run_id))
            self._blocks[(a.key, b.key)] = bid
            return
        key = manifests.block_label(bid)
        for p, side in ((a, "a"), (b, "b")):
            self.rest.patch("Pod", p.namespace, p.name, {"metadata": {"labels": {key: side}}})
        for p, side, other in ((a, "a", "b"), (b, "b", "a")):
            self.rest.create(manifests.block_policy(bid, p.namespace, side, other, self.run_id))
        self._blocks[(a.key, b.key)] = bid

    def unblock(self, a: Pod, b: Pod) -> None:
        bid = self._blocks.pop((a.key, b.key), None) or self._blocks.pop((b.key, a.key), None)
        if bid is None:
            return
        if self.block_method == "networkchaos":
            self.rest.delete("NetworkChaos", a.namespace, f"meshproof-block-{bid}")
            return
        for p, side in ((a, "a"), (b, "b")):
            self.rest.delete("NetworkPolicy", p.namespace, f"meshproof-block-{bid}-{side}")

    # ------------------------------------------------------------ evidence

    def capture_start(self, src: Pod, dst: Pod) -> str:
        raise TargetError(self.missing["capture"])

    def capture_stop(self, capture_id: str, marker: str = "") -> CaptureSummary:
        raise TargetError(self.missing["capture"])

    def evidence(self, pods: list[Pod], tail: int = 200) -> dict[str, Any]:
        """Logs of every container, events and status of these pods (for a failure)."""
        out: dict[str, Any] = {}
        for p in pods:
            item: dict[str, Any] = {"events": apply.events_of(self.rest, p.namespace, p.name,
                                                              limit=20)}
            try:
                raw = self.rest.get("Pod", p.namespace, p.name)
                item["status"] = apply.why_not_ready(raw) if not apply.pod_ready(raw) else "ready"
                for c in (raw.get("spec") or {}).get("containers") or ():
                    item[f"log:{c['name']}"] = self.rest.call(
                        "GET", f"/api/v1/namespaces/{p.namespace}/pods/{p.name}/log",
                        query=[("container", c["name"]), ("tailLines", str(tail))])
            except KubeApiError as exc:
                item["error"] = str(exc)
            out[p.key] = item
        return out

    def clock_tick_s(self) -> float:
        if self._tick is None:
            src = next((p for p in self.pods() if p.workload == "client" and p.ready), None)
            if src is None:
                raise TargetError("no ready client pod to read the node's clock tick in")
            out, err, rc = execprobe.exec_in(self.rest.api, src.namespace, src.name,
                                             CLOCK_CMD, timeout_s=30)
            try:
                self._tick = float(out.strip().splitlines()[-1])
            except (ValueError, IndexError) as exc:
                raise TargetError(f"could not read the node's coarse clock tick in {src.key}: "
                                  f"{(err or out)[-200:]!r}") from exc
        return self._tick

    def down(self) -> dict[str, list[str]]:
        if self._down:
            return {}
        self._down = True
        removed = {"restored": restore_control_plane(self.rest, self.profile, wait_s=0)}
        removed.update(cleanup.sweep(self.rest, self.profile, self.run_id))
        return removed


def restore_control_plane(rest: Rest, profile: MeshProfile, wait_s: float = 0) -> list[str]:
    """Scale back every control-plane Deployment a run scaled to 0 (from the annotation
    it left on the object, so this also heals after a killed run)."""
    if not profile.control_plane_namespace:
        return []
    done = []
    try:
        deps = rest.list("Deployment", profile.control_plane_namespace,
                         profile.control_plane_selector)
    except KubeApiError:
        return []
    for d in deps:
        ann = d["metadata"].get("annotations") or {}
        if REPLICAS_BEFORE not in ann:
            continue
        n = d["metadata"]["name"]
        rest.patch("Deployment", profile.control_plane_namespace, n,
                   {"spec": {"replicas": int(ann[REPLICAS_BEFORE])}}, sub="scale")
        rest.patch("Deployment", profile.control_plane_namespace, n,
                   {"metadata": {"annotations": {REPLICAS_BEFORE: None}}})
        done.append(f"{profile.control_plane_namespace}/{n}")
    deadline = time.monotonic() + wait_s
    while wait_s and time.monotonic() < deadline:
        deps = rest.list("Deployment", profile.control_plane_namespace,
                         profile.control_plane_selector)
        if deps and all(int((d.get("status") or {}).get("readyReplicas") or 0) > 0
                        for d in deps):
            break
        time.sleep(1.0)
    return done


def profile_for(mesh: Any) -> MeshProfile:
    """The kube profile of a registry MeshEntry (``none``: no injection, no control plane)."""
    if mesh is None or getattr(mesh, "installs", "none") == "none":
        return config.NO_MESH
    from meshproof import registry

    ref = mesh.installers.get("kube")
    if not ref:
        raise ConfigError(f"mesh {mesh.name!r} cannot run on the kube target")
    return registry.resolve(ref)()  # type: ignore[no-any-return]


def connect(profile: MeshProfile, **options: Any) -> tuple[Rest, KubeOptions, pre.Preflight]:
    """Client + preflight: fails (exit 2) before anything is created."""
    opts = KubeOptions.from_env(**options)
    rest = Rest(config.api_client(opts))
    pf = pre.run(rest, opts, profile, component_outage=opts.allow_component_outage)
    return rest, opts, pf


def start_target(mesh: Any, defect: str = "", *,
                 progress: Callable[[str, int, int], None] | None = None,
                 reviews_replicas: int = 1, detached: bool = False,
                 topology: str = "fixture", load_clients: int = 1,
                 **options: Any) -> KubeTarget:
    if defect:
        raise ConfigError(f"defect {defect!r} cannot be injected on the kube target",
                          "defects are the reference mesh's; run them with --target local")
    profile = profile_for(mesh)
    rest, opts, pf = connect(profile, **options)
    topo = named(topology, reviews_replicas=reviews_replicas, load_clients=load_clients)
    cleanup.clear_the_way(rest, profile, [ns.name for ns in topo.namespaces])
    restore_control_plane(rest, profile)
    target = KubeTarget(rest, opts, profile, topo, pf)
    objs = manifests.topology_objects(topo, opts.run_id, profile, opts.image,
                                      ns_annotations={OWNER_ANNOTATION: config.owner()})
    try:
        apply.create_all(rest, objs, progress)
        target._wait_workloads({(w.namespace, w.name): w.replicas for w in topo.workloads})
    except BaseException:  # Ctrl-C included: nothing half-made stays behind
        try:
            cleanup.sweep(rest, profile, opts.run_id, wait=False)
        finally:
            target._down = True
        raise
    return target


def attach(**options: Any) -> KubeTarget:
    """The run whose namespaces exist now: status and probes, and the chaos activities'
    faults (a separate process from the one that started the run). The mesh comes from
    ``MESHPROOF_MESH`` (what ``meshproof chaos`` sets), so its control plane can be a
    component (with the opt-in flag); the topology is whichever the run's namespaces
    hold; Chaos Mesh is looked for as at the start."""
    import os

    from meshproof import registry
    from meshproof.topology import TOPOLOGIES

    opts = KubeOptions.from_env(**options)
    rest = Rest(config.api_client(opts))
    runs = {(n["metadata"].get("labels") or {}).get(RUN_LABEL)
            for n in rest.list("Namespace", selector=f"{MANAGED_LABEL}=true")}
    runs.discard(None)
    if len(runs) != 1:
        raise TargetError("no meshproof run on this cluster" if not runs else
                          f"several meshproof runs on this cluster: {sorted(runs)}",
                          "meshproof down --target kube removes leftovers")
    opts = KubeOptions.from_env(**{**options, "run_id": runs.pop()})
    mesh = os.environ.get("MESHPROOF_MESH", "")
    profile = profile_for(registry.mesh_entry(mesh, "kube")) if mesh else config.NO_MESH
    existing = {n["metadata"]["name"]
                for n in rest.list("Namespace", selector=f"{RUN_LABEL}={opts.run_id}")}
    topo = next((t for t in (named(n) for n in TOPOLOGIES)
                 if existing >= {ns.name for ns in t.namespaces}), fixture_topology())
    pf = pre.Preflight("?")
    pf.chaos_mesh, pf.chaos_mesh_why = pre.chaos_mesh(rest, opts.where())
    return KubeTarget(rest, opts, profile, topo, pf)


def down_leftovers(mesh: Any = None, **options: Any) -> dict[str, list[str]]:
    """``meshproof down --target kube``: every managed object of any run, and a control
    plane a killed run left scaled to 0."""
    opts = KubeOptions.from_env(**options)
    rest = Rest(config.api_client(opts))
    try:
        rest.version()
    except KubeApiError as exc:
        raise TargetError(f"the cluster is unreachable ({opts.where()}): {exc.reason}",
                          "is the cluster running? check KUBECONFIG / "
                          "MESHPROOF_KUBE_CONTEXT") from exc
    profile = profile_for(mesh) if mesh is not None else _all_profiles()
    removed = {"restored": restore_control_plane(rest, profile)}
    removed.update(cleanup.sweep(rest, profile))
    return removed


def _all_profiles() -> MeshProfile:
    """Without a mesh named, sweep the Istio kinds too (a mesh run may have been killed)."""
    try:
        from meshproof.mesh.istio.adapter import kube_profile

        return kube_profile()
    except Exception:  # pragma: no cover - istio module always present in this tree
        return config.NO_MESH


def service_ports(spec: dict[str, Any]) -> tuple[ServicePort, ...]:
    """A Service spec's ports as the model's ``ServicePort`` (protocol as Istio reads it)."""
    out = []
    for p in spec.get("ports") or []:
        name = str(p.get("name") or "")
        proto = str(p.get("appProtocol") or name.split("-", 1)[0]).lower()
        proto = {"h2c": "http2", "kubernetes.io/h2c": "http2"}.get(proto, proto)
        port = int(p.get("port", 80))
        target = p.get("targetPort", port)
        out.append(ServicePort(port, int(target) if str(target).isdigit() else port,
                               proto if proto in APP_PROTOCOLS else "tcp", name))
    return tuple(out)
