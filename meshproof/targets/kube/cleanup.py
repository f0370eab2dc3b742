"""Remove what runs made, by label: at the end, on failure, on Ctrl-C, and the next
time after a killed run (``meshproof down --target kube``, or the next start).

Namespaces carry ``meshproof.io/managed=true`` and the run's id; deleting a
namespace removes everything in it. A mesh's resources outside the test
namespaces (e.g. Istio's mesh-wide PeerAuthentication in istio-system) carry
the same labels and are swept per kind. A namespace of the topology that
exists *without* the managed label is not ours: the run stops (exit 2)
rather than touch it.
"""

from __future__ import annotations

import os
import socket
import time

from meshproof.errors import TargetError
from meshproof.targets.kube.config import (DELETE_TIMEOUT_S, MANAGED_LABEL, OWNER_ANNOTATION,
                                           RUN_LABEL, MeshProfile)
from meshproof.targets.kube.rest import KubeApiError, Rest


def sweep(rest: Rest, profile: MeshProfile, run_id: str = "", *, wait: bool = True,
          timeout_s: float = DELETE_TIMEOUT_S) -> dict[str, list[str]]:
    """Delete every managed object (of ``run_id`` only, when given); returns what was
    deleted by kind. Waits, bounded, for the namespaces to be gone."""
    sel = f"{RUN_LABEL}={run_id}" if run_id else f"{MANAGED_LABEL}=true"
    removed: dict[str, list[str]] = {"namespaces": [], "mesh_resources": []}
    if profile.control_plane_namespace:
        for kind in profile.resource_kinds:
            try:
                for o in rest.list(kind, profile.control_plane_namespace, sel):
                    rest.delete(kind, profile.control_plane_namespace, o["metadata"]["name"])
                    removed["mesh_resources"].append(
                        f"{kind} {profile.control_plane_namespace}/{o['metadata']['name']}")
            except KubeApiError as exc:
                if exc.status not in (404,):
                    raise
    names = [n["metadata"]["name"] for n in rest.list("Namespace", selector=sel)]
    for name in names:
        rest.delete("Namespace", "", name)
        removed["namespaces"].append(name)
    if wait and names:
        deadline = time.monotonic() + timeout_s
        poll_s = 0.05
        while True:
            left = {n["metadata"]["name"] for n in rest.list("Namespace", selector=sel)}
            left &= set(names)
            if not left:
                break
            if time.monotonic() > deadline:
                raise TargetError(f"namespaces still terminating after {timeout_s:.0f}s: "
                                  f"{', '.join(sorted(left))}",
                                  "a finalizer may be stuck: kubectl get ns NAME -o yaml")
            time.sleep(poll_s)
            poll_s = min(1.0, poll_s * 2)
    return removed


def owner_alive(owner: str) -> bool:
    """Is the run that owns these namespaces still alive? Only decidable on this host."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_the_way(rest: Rest, profile: MeshProfile, namespaces: list[str]) -> list[str]:
    """Before a run: a killed run's leftovers are removed; a live run or a namespace that
    is not meshproof's stops this one. Returns the leftovers removed."""
    existing = {n["metadata"]["name"]: n for n in rest.list("Namespace")}
    foreign = [n for n in namespaces if n in existing
               and (existing[n]["metadata"].get("labels") or {}).get(MANAGED_LABEL) != "true"]
    if foreign:
        raise TargetError(f"namespace(s) {', '.join(foreign)} exist and are not meshproof's",
                          "meshproof's topology needs these names: run against a cluster "
                          "where they are free, or remove them yourself")
    ours = [existing[n] for n in namespaces if n in existing]
    for n in ours:
        who = (n["metadata"].get("annotations") or {}).get(OWNER_ANNOTATION, "")
        if who and owner_alive(who) and who.rpartition(":")[2] != str(os.getpid()):
            raise TargetError(f"another meshproof run ({who}) is using this cluster",
                              "wait for it, or 'meshproof down --target kube' if it is gone")
    if not ours:
        return []
    return sweep(rest, profile)["namespaces"]
