"""Create the objects, then wait, bounded, until every pod is ready.

A wait that runs out names each pod that never became ready, why (its
containers' waiting/terminated reasons) and its events, so "ImagePullBackOff
on python:3.12-slim" or "FailedCreate: violates PodSecurity" reads at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from meshproof.errors import TargetError
from meshproof.targets.kube.config import RUN_LABEL
from meshproof.targets.kube.rest import KubeApiError, Obj, Rest
from meshproof.targets.model import APP_PROTOCOLS, AppPort

Progress = Callable[[str, int, int], None]


def create_all(rest: Rest, objs: list[Obj], progress: Progress | None = None) -> list[Obj]:
    """Create ``objs`` in order; returns those created (cleanup removes them anyway)."""
    made = []
    for i, obj in enumerate(objs, 1):
        meta = obj["metadata"]
        where = f"{obj['kind']} {meta.get('namespace', '') + '/' if meta.get('namespace') else ''}{meta['name']}"
        try:
            rest.create(obj)
        except KubeApiError as exc:
            raise TargetError(f"could not create {where}: {exc.reason or exc}",
                              "see the message; 'meshproof down --target kube' removes "
                              "what this run made") from exc
        made.append(obj)
        if progress:
            progress(f"created {where}", i, len(objs))
    return made


def pod_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def why_not_ready(pod: Obj) -> str:
    st = pod.get("status") or {}
    reasons = []
    for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
        state = cs.get("state") or {}
        for phase in ("waiting", "terminated"):
            if phase in state:
                s = state[phase]
                reasons.append(f"{cs.get('name')}: {s.get('reason', phase)}"
                               + (f" ({s['message'][:160]})" if s.get("message") else ""))
    return "; ".join(reasons) or f"phase {st.get('phase', 'unknown')}"


def events_of(rest: Rest, namespace: str, name: str, limit: int = 5) -> list[str]:
    try:
        evs = rest.list("Event", namespace, field_selector=f"involvedObject.name={name}")
    except KubeApiError:
        return []
    evs.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    return [f"{e.get('type', '')} {e.get('reason', '')}: {str(e.get('message', ''))[:200]}"
            for e in evs[-limit:]]


def wait_ready(rest: Rest, run_id: str, want: dict[tuple[str, str], int], timeout_s: float,
               progress: Progress | None = None, poll_s: float = 0.05,
               workload_label: str = "meshproof.io/workload") -> list[Obj]:
    """Wait until each (namespace, workload) has its number of ready pods (and no more
    pods terminating); returns the ready pods. TargetError names the laggards."""
    deadline = time.monotonic() + timeout_s
    namespaces = sorted({ns for ns, _ in want})
    total = sum(want.values())
    while True:
        pods: list[Obj] = []
        for ns in namespaces:
            pods += [p for p in rest.list("Pod", ns, f"{RUN_LABEL}={run_id}")
                     if not (p.get("metadata") or {}).get("deletionTimestamp")]
        ready = [p for p in pods if pod_ready(p)]
        counts: dict[tuple[str, str], int] = {}
        for p in ready:
            key = (p["metadata"]["namespace"],
                   (p["metadata"].get("labels") or {}).get(workload_label, ""))
            counts[key] = counts.get(key, 0) + 1
        done = sum(min(counts.get(k, 0), n) for k, n in want.items())
        if progress:
            progress("waiting for pods to be ready", done, total)
        if all(counts.get(k, 0) == n for k, n in want.items()):
            return [p for p in ready if (p["metadata"]["namespace"], (
                p["metadata"].get("labels") or {}).get(workload_label, "")) in want]
        if time.monotonic() > deadline:
            break
        time.sleep(poll_s)
        poll_s = min(1.0, poll_s * 2)  # quick when things are quick, 1 s at most
    lines = []
    for p in pods:
        if not pod_ready(p):
            m = p["metadata"]
            evs = events_of(rest, m["namespace"], m["name"])
            lines.append(f"{m['namespace']}/{m['name']}: {why_not_ready(p)}"
                         + (f"; events: {' | '.join(evs)}" if evs else ""))
    short = [f"{ns}/{wl}: {counts.get((ns, wl), 0)}/{n} ready"
             for (ns, wl), n in sorted(want.items()) if counts.get((ns, wl), 0) != n]
    raise TargetError(
        f"pods not ready within {timeout_s:.0f}s: {', '.join(short[:6])}"
        + ("\n  " + "\n  ".join(lines[:8]) if lines else "\n  (no pods were created: "
           "check the Deployments' ReplicaSet events, e.g. PodSecurity or quota)"),
        "fix what the events say (image pull: set MESHPROOF_KUBE_IMAGE to a reachable "
        "Python 3 image); the run's objects are being removed")


def deployment_pods_missing(rest: Rest, namespace: str, name: str) -> list[str]:
    """Events of a Deployment's ReplicaSets (why no pod was made at all)."""
    out: list[str] = []
    try:
        for rs in rest.call("GET", f"/apis/apps/v1/namespaces/{namespace}/replicasets",
                            query=[("labelSelector", f"meshproof.io/workload={name}")]
                            ).get("items", []):
            out += events_of(rest, namespace, rs["metadata"]["name"])
    except KubeApiError:
        pass
    return out


def as_pod_kw(p: Obj) -> dict[str, Any]:
    m, spec, st = p["metadata"], p.get("spec") or {}, p.get("status") or {}
    return {"namespace": m["namespace"], "name": m["name"],
            "labels": dict(m.get("labels") or {}),
            "service_account": spec.get("serviceAccountName", "default"),
            "ip": st.get("podIP", ""), "ready": pod_ready(p), **app_ports(spec)}


def app_ports(spec: Obj) -> dict[str, Any]:
    """The app container's ports (``port`` the first, ``ports`` all), each with the protocol
    its name's prefix declares (manifests.container_ports names them ``grpc-7070``)."""
    app = next((c for c in spec.get("containers") or [] if c.get("name") == "app"), {})
    ports = tuple(AppPort(int(c["containerPort"]),
                          proto if (proto := str(c.get("name", "")).split("-")[0])
                          in APP_PROTOCOLS else "tcp")
                  for c in app.get("ports") or [] if c.get("containerPort"))
    return {"port": ports[0].port, "ports": ports} if ports else {}
