"""The fixture topology as Kubernetes objects: pure functions, no API calls.

Every object carries the run label (cleanup finds them by it) and the
managed label (the next run finds a killed run's leftovers by it).
Workloads run the app (``fixtures/app/workload.py``) and keep the probe
(``fixtures/probe/probe.py``) beside it, both from one ConfigMap per namespace
mounted at /meshproof, in a stock Python image, with the pure-Python HTTP/2
libraries they import (``meshproof.podlib``) in the same ConfigMap under
``pylib/`` (a ConfigMap key cannot hold ``/``: keys are flattened and the
volume's ``items`` put each back at its path). Containers meet the
restricted PodSecurity profile (non-root, no privilege escalation, all
capabilities dropped, RuntimeDefault seccomp); a namespace enforces it where
the mesh allows (unmeshed always; meshed when the profile says the mesh's
injected pods comply, e.g. Istio with its CNI), else it only warns.
``tests/kube`` validates every object with kubernetes-validate, strictly.
"""

from __future__ import annotations

from typing import Any

from meshproof import paths, podlib
from meshproof.targets.kube.config import MANAGED_LABEL, RUN_LABEL, MeshProfile
from meshproof.targets.model import APP_PORT, NamespaceSpec, ServiceSpec, WorkloadSpec
from meshproof.topology import Topology

Obj = dict[str, Any]
CONFIGMAP = "meshproof-fixtures"
MOUNT = "/meshproof"
PROBE_CMD = ["python3", f"{MOUNT}/probe.py", "--once"]
WORKLOAD_LABEL = "meshproof.io/workload"
UID = 10001


def _meta(name: str, namespace: str, run_id: str, labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "labels": {RUN_LABEL: run_id, MANAGED_LABEL: "true",
                                          **(labels or {})}}
    if namespace:
        meta["namespace"] = namespace
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def namespace(ns: NamespaceSpec, run_id: str, profile: MeshProfile,
              annotations: dict[str, str] | None = None) -> Obj:
    labels: dict[str, str] = {}
    ann = dict(annotations or {})
    enforce = not ns.meshed or profile.meshed_restricted or profile.name == "none"
    labels["pod-security.kubernetes.io/" + ("enforce" if enforce else "warn")] = "restricted"
    if ns.meshed:
        labels.update(profile.namespace_labels)
        ann.update(profile.namespace_annotations)
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(ns.name, "", run_id, labels, ann)}


def fixture_files() -> dict[str, str]:
    """ConfigMap data: the app, the probe and the stdlib load generator, byte for byte from
    the tree, and the pod libraries (key ``pylib__h2__connection.py`` for
    ``pylib/h2/connection.py``)."""
    out = {"workload.py": (paths.ROOT / "fixtures" / "app" / "workload.py").read_text(),
           "probe.py": (paths.ROOT / "fixtures" / "probe" / "probe.py").read_text(),
           "loadgen.py": (paths.ROOT / "loadtests" / "podgen.py").read_text()}
    out.update({file_key(f"{podlib.PYLIB}/{rel}"): text
                for rel, text in podlib.files().items()})
    return out


def file_key(path: str) -> str:
    """The ConfigMap key of a mounted file's path (keys are [-._a-zA-Z0-9]+)."""
    return path.replace("/", "__")


def volume_items(keys: list[str]) -> list[Obj]:
    """Each ConfigMap key back at its path under the mount."""
    return [{"key": k, "path": k.replace("__", "/")} for k in sorted(keys)]


def configmap(ns: str, run_id: str, files: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(CONFIGMAP, ns, run_id), "data": dict(files)}


def service_account(ns: str, name: str, run_id: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, ns, run_id)}


def restricted_context() -> Obj:
    return {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": UID,
            "runAsGroup": UID, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def _env(w: WorkloadSpec) -> list[Obj]:
    plain = {"MESHPROOF_ROLE": w.role, "MESHPROOF_SERVICE": w.app,
             "MESHPROOF_VERSION": w.version, **w.port_env(),
             "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env: list[Obj] = [{"name": k, "value": v} for k, v in plain.items()]
    env += [{"name": "MESHPROOF_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MESHPROOF_NAMESPACE",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
    return env


def container_ports(w: WorkloadSpec) -> list[Obj]:
    """Istio's rule: a port name's prefix says its protocol (``grpc-7070``)."""
    return [{"name": f"{p.protocol}-{p.port}"[:15], "containerPort": p.port, "protocol": "TCP"}
            for p in w.ports]


def deployment(w: WorkloadSpec, run_id: str, image: str,
               file_keys: list[str] | None = None) -> Obj:
    selector = {"app": w.app, "version": w.version, WORKLOAD_LABEL: w.name}
    labels = {**w.labels, **selector}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": _meta(w.name, w.namespace, run_id, labels),
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**labels, RUN_LABEL: run_id, MANAGED_LABEL: "true"}},
                "spec": {
                    "serviceAccountName": w.sa,
                    "terminationGracePeriodSeconds": 2,
                    "securityContext": {"runAsNonRoot": True,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                        "command": ["python3", f"{MOUNT}/workload.py"],
                        "env": _env(w),
                        "ports": container_ports(w),
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": w.port},
                                           "periodSeconds": 2, "failureThreshold": 3},
                        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"},
                                      "limits": {"memory": "256Mi"}},
                        "securityContext": restricted_context(),
                        "volumeMounts": [{"name": "fixtures", "mountPath": MOUNT,
                                          "readOnly": True},
                                         {"name": "scratch", "mountPath": "/tmp"}],
                    }],
                    "volumes": [{"name": "fixtures", "configMap": {
                                    "name": CONFIGMAP,
                                    "items": volume_items(file_keys or list(fixture_files()))}},
                                {"name": "scratch", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def service(s: ServiceSpec, run_id: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(s.name, s.namespace, run_id),
            "spec": {"selector": dict(s.selector),
                     # Istio picks the protocol from the port name's prefix or appProtocol:
                     # both say it.
                     "ports": [{"name": p.port_name, "port": p.port,
                                "targetPort": p.target_port, "protocol": "TCP",
                                "appProtocol": p.protocol}
                               for p in s.ports]}}


def topology_objects(t: Topology, run_id: str, profile: MeshProfile, image: str,
                     files: dict[str, str] | None = None,
                     ns_annotations: dict[str, str] | None = None) -> list[Obj]:
    """Every object of the topology, in the order they must be created."""
    files = files if files is not None else fixture_files()
    out: list[Obj] = [namespace(ns, run_id, profile, ns_annotations) for ns in t.namespaces]
    out += [configmap(ns.name, run_id, files) for ns in t.namespaces]
    seen: set[tuple[str, str]] = set()
    for w in t.workloads:
        if (w.namespace, w.sa) not in seen:
            seen.add((w.namespace, w.sa))
            out.append(service_account(w.namespace, w.sa, run_id))
    out += [service(s, run_id) for s in t.services]
    out += [deployment(w, run_id, image, list(files)) for w in t.workloads]
    return out


# ---------------------------------------------------------------- faults

def block_label(block_id: str) -> str:
    return f"meshproof.io/block-{block_id}"


def block_policy(block_id: str, namespace: str, side: str, other: str, run_id: str) -> Obj:
    """Refuse ingress to the pod labelled ``side`` from the pod labelled ``other``: one of
    the two NetworkPolicies that partition two pods (each side refuses the other). Every
    other pod, in any namespace, may still connect."""
    key = block_label(block_id)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(f"meshproof-block-{block_id}-{side}", namespace, run_id),
            "spec": {"podSelector": {"matchLabels": {key: side}},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{
                         "namespaceSelector": {},
                         "podSelector": {"matchExpressions": [
                             {"key": key, "operator": "NotIn", "values": [other]}]}}]}]}}


def network_chaos(block_id: str, a: tuple[str, str], b: tuple[str, str], run_id: str) -> Obj:
    """Chaos Mesh's partition of pod ``a`` from pod ``b`` (namespace, name), both
    directions, until deleted (no ``duration``). Fields from Chaos Mesh's
    api/v1alpha1 NetworkChaosSpec: the inline PodSelector (``selector`` with ``pods``:
    namespace -> names, ``mode``), ``action``, ``direction``, ``target``."""
    return {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
            "metadata": _meta(f"meshproof-block-{block_id}", a[0], run_id),
            "spec": {"action": "partition", "mode": "all",
                     "selector": {"pods": {a[0]: [a[1]]}},
                     "direction": "both",
                     "target": {"mode": "all", "selector": {"pods": {b[0]: [b[1]]}}}}}


#: The project's own toxiproxy server (stdlib only: meshproof/toxiproxy minus its client
#: layer) as the files of a package, mounted into the stock Python image.
TOXIPROXY_FILES = ("meshproof/__init__.py", "meshproof/errors.py", "meshproof/netns_socket.py",
                   *(f"meshproof/toxiproxy/{m}.py" for m in (
                       "__init__", "__main__", "api", "errors", "gojson", "http", "link",
                       "proxy", "server", "toxics")))
TOXIPROXY_MOUNT = "/meshproof-toxiproxy"
TOXIPROXY_API_PORT = 8474


def toxiproxy_files() -> dict[str, str]:
    """ConfigMap key (a path with '/' as '.', keys allow no '/') -> file text."""
    return {rel.replace("/", "."): (paths.ROOT / rel).read_text() for rel in TOXIPROXY_FILES}


def toxiproxy(namespace: str, upstream: str, run_id: str, image: str,
              listen_port: int = TOXIPROXY_API_PORT) -> list[Obj]:
    """The project's toxiproxy server (``python3 -m meshproof.toxiproxy``, the toxiproxy
    v2 API on ``listen_port``) as a Deployment + Service + ConfigMap in front of
    ``upstream``, from the same stock Python image as the app: L4 faults (latency,
    bandwidth, reset, timeout, ...). A proxy listening on the app port toward the
    upstream service is created through the API (``POST /proxies``); callers then
    reach the upstream through ``toxiproxy-<upstream>`` (port 80)."""
    name = f"toxiproxy-{upstream}"
    labels = {"app": name}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace, run_id),
          "data": toxiproxy_files()}
    items = [{"key": rel.replace("/", "."), "path": rel} for rel in TOXIPROXY_FILES]
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": _meta(name, namespace, run_id, labels),
           "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": {**labels, RUN_LABEL: run_id,
                                                         MANAGED_LABEL: "true"}},
                                 "spec": {"securityContext": {
                                     "runAsNonRoot": True,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                                     "terminationGracePeriodSeconds": 2,
                                     "containers": [{
                                         "name": "toxiproxy", "image": image,
                                         "imagePullPolicy": "IfNotPresent",
                                         "command": ["python3", "-m", "meshproof.toxiproxy",
                                                     "-host", "0.0.0.0",
                                                     "-port", str(listen_port)],
                                         "workingDir": TOXIPROXY_MOUNT,
                                         "env": [{"name": "PYTHONPATH",
                                                  "value": TOXIPROXY_MOUNT},
                                                 {"name": "PYTHONDONTWRITEBYTECODE",
                                                  "value": "1"}],
                                         "ports": [{"name": "api",
                                                    "containerPort": listen_port},
                                                   {"name": "proxy",
                                                    "containerPort": APP_PORT}],
                                         "readinessProbe": {"httpGet": {
                                             "path": "/version", "port": listen_port},
                                             "periodSeconds": 2},
                                         "resources": {"requests": {"cpu": "20m",
                                                                    "memory": "32Mi"},
                                                       "limits": {"memory": "256Mi"}},
                                         "volumeMounts": [{"name": "toxiproxy",
                                                           "mountPath": TOXIPROXY_MOUNT,
                                                           "readOnly": True}],
                                         "securityContext": restricted_context()}],
                                     "volumes": [{"name": "toxiproxy", "configMap": {
                                         "name": name, "items": items}}]}}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, run_id),
           "spec": {"selector": labels,
                    "ports": [{"name": "tcp-api", "port": listen_port},
                              {"name": "http", "port": 80, "targetPort": APP_PORT}]}}
    return [cm, dep, svc]
