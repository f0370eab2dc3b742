"""The Istio adapter, on the kube target.

``apply`` renders the whole intent set (``render.render_all``) plus the
sentinel (the black-box method's 100% abort fault on ``bookinfo/sentinel``,
a new status each apply) and makes the cluster hold exactly that set:
create or replace each resource, delete what is no longer rendered. Every
resource carries the run's labels, so cleanup sweeps it even after a kill.

Programmed: istiod's per-proxy sync status (``syncz``): every meshed pod's
proxy has ACKed (acked nonce == sent nonce for every type) a push made after
the change; the sentinel changes every proxy's routes on each apply, so each
of them must be pushed. When istiod's status cannot be read (no
``services/proxy`` permission in istio-system, or it does not answer), the
sentinel method decides instead, and ``describe()`` says which method is in use.
"""

from __future__ import annotations

import time
from typing import Any

from meshproof.errors import MeshproofError
from meshproof.intent import Intent
from meshproof.mesh.base import (ConfigRejected, DeclaredResources, MeshAdapter, MeshInfo,
                                 NotProgrammed, Token)
from meshproof.mesh.blackbox import CONSECUTIVE, SENTINEL_URL, sentinel, sentinel_status
from meshproof.mesh.istio import render, syncz
from meshproof.targets.base import Target
from meshproof.targets.kube.config import MANAGED_LABEL, RUN_LABEL, MeshProfile
from meshproof.targets.kube.rest import KubeApiError

NAMESPACE = "istio-system"
SELECTOR = "app=istiod"
SYNCZ_PATH = f"/api/v1/namespaces/{NAMESPACE}/services/istiod:15014/proxy/debug/syncz"
KINDS = ("VirtualService", "DestinationRule", "PeerAuthentication", "AuthorizationPolicy")

#: What the adapter implements (nothing else is claimed): see render.py for the mapping.
CLAIMS = frozenset({"mtls-strict", "mtls-permissive", "mtls-workload-override",
                    "traffic-split", "traffic-split-match", "access-control",
                    "access-control-routes", "retries", "timeouts", "fault-injection",
                    # Istio reads each port's protocol from its name / appProtocol (the
                    # kube target sets both) and applies AuthorizationPolicy at L4 on TCP.
                    "protocol-http2", "protocol-grpc", "protocol-tcp", "access-control-tcp"})


def kube_profile() -> MeshProfile:
    """What the kube target needs to know about Istio before it creates anything."""
    perms = []
    for kind, group in (("virtualservices", "networking.istio.io"),
                        ("destinationrules", "networking.istio.io"),
                        ("peerauthentications", "security.istio.io"),
                        ("authorizationpolicies", "security.istio.io")):
        for verb in ("create", "update", "delete", "list", "get"):
            perms.append((verb, group, kind, ""))
    return MeshProfile(
        "istio", namespace_labels={"istio-injection": "enabled"},
        control_plane_namespace=NAMESPACE, control_plane_selector=SELECTOR,
        control_plane_hint="install Istio first (istioctl install -y, or the Helm charts "
                           "base + istiod), then run again",
        meshed_restricted=False, permissions=tuple(perms), resource_kinds=KINDS)


class IstioMesh(DeclaredResources, MeshAdapter):
    name = "istio"

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        rest = getattr(target, "rest", None)
        if rest is None:
            raise MeshproofError("the istio adapter runs on the kube target",
                                 "use --target kube")
        self.rest = rest
        self.run_id = str(getattr(target, "run_id", ""))
        self.resources: dict[str, Intent] = {}
        self.generation = 0
        self.applied: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.method = "acked"
        self.last_error = ""
        self.ctx = render.Context.of(getattr(target, "topology", None),
                                     labels={RUN_LABEL: self.run_id, MANAGED_LABEL: "true"})
        self._before: dict[int, dict[str, syncz.ProxySync]] = {}

    # ------------------------------------------------------------ declarations

    def claims(self) -> frozenset[str]:
        return CLAIMS

    def describe(self) -> MeshInfo:
        return MeshInfo("istio", self.version(), self.method,
                        {"sentinel": SENTINEL_URL, "control_plane": f"{NAMESPACE}/{SELECTOR}"})

    def version(self) -> str:
        """Istio's version, from istiod's image tag (what the cluster really runs)."""
        try:
            deps = self.rest.list("Deployment", NAMESPACE, SELECTOR)
        except KubeApiError as exc:
            return f"unknown ({exc.status})"
        tags = sorted({c.get("image", "").rpartition(":")[2]
                       for d in deps for c in d["spec"]["template"]["spec"]["containers"]
                       if c.get("name") == "discovery"})
        return ",".join(t for t in tags if t) or "unknown"

    # ------------------------------------------------------------ config

    def docs(self) -> list[dict[str, Any]]:
        intents = [*self.resources.values(), sentinel(self.generation)]
        return render.render_all(intents, self.ctx)

    def _publish(self) -> Token:
        self.generation += 1
        docs = self.docs()  # Unsupported raises before anything changes
        self._before[self.generation] = self._syncz() or {}
        want = {(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs}
        try:
            for key, d in want.items():
                if self.applied.get(key) != d:
                    self.rest.replace_or_create(d)
                    self.applied[key] = d
            for key in [k for k in self.applied if k not in want]:
                self.rest.delete(*key)
                del self.applied[key]
        except KubeApiError as exc:  # e.g. istiod's validating webhook refusing a resource
            raise ConfigRejected(f"the cluster refused the Istio config: {exc}",
                                 "the resources applied so far stay; evidence lists them") \
                from exc
        return Token(self.name, self.generation)

    # ------------------------------------------------------------ programmed

    def _syncz(self) -> dict[str, syncz.ProxySync] | None:
        try:
            doc = self.rest.call("GET", SYNCZ_PATH, timeout=(3.0, 10.0))
        except KubeApiError as exc:
            self.last_error = str(exc)
            return None
        return syncz.parse(doc)

    def proxies(self) -> list[str]:
        return sorted(f"{p.name}.{p.namespace}" for p in self.target.pods()
                      if p.meshed and p.ready)

    def _wait(self, token: Token, timeout: float) -> None:
        gen = int(token.value)
        before = self._before.get(gen, {})
        deadline = time.monotonic() + timeout
        proxies = self.proxies()
        why: dict[str, str] = {}
        while True:
            now = self._syncz()
            if now is None:
                self.method = "sentinel"
                return self._sentinel_wait(gen, deadline, timeout)
            self.method = "acked"
            why = syncz.pending(before, now, proxies)
            if not why:
                return None
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        first = "; ".join(f"{k}: {v}" for k, v in list(why.items())[:3])
        raise NotProgrammed(f"istiod: {len(why)} of {len(proxies)} proxies not programmed "
                            f"within {timeout}s: {first}",
                            "istioctl proxy-status shows each proxy's sync state")

    def _sentinel_wait(self, gen: int, deadline: float, timeout: float) -> None:
        from meshproof.targets.model import ProbeOrder

        want = str(sentinel_status(gen))
        order = ProbeOrder(SENTINEL_URL, count=CONSECUTIVE, fresh=True, timeout_s=2.0,
                           deadline_s=5.0, keep_body=False)
        late = []
        for pod in [p for p in self.target.pods() if p.meshed and p.ready]:
            seen: list[str] = []
            while True:
                seen = [r.outcome for r in self.target.probe(pod, order)]
                if all(o == want for o in seen):
                    break
                if time.monotonic() > deadline:
                    late.append(f"{pod.key} saw {seen}")
                    break
                time.sleep(0.2)
        if late:
            raise NotProgrammed(f"sentinel {want} not seen {CONSECUTIVE}x in a row within "
                                f"{timeout}s: {'; '.join(late[:3])} (istiod's sync status "
                                f"was unreadable: {self.last_error})")

    # ------------------------------------------------------------ evidence

    def evidence(self, pods: list[Any]) -> dict[str, Any]:
        """The Istio resources as the cluster holds them, istiod's sync status, and the
        target's pod logs and events."""
        out: dict[str, Any] = {"method": self.method, "generation": self.generation}
        live = []
        for kind, ns, name in self.applied:
            try:
                live.append(self.rest.get(kind, ns, name))
            except KubeApiError as exc:
                live.append({"kind": kind, "name": f"{ns}/{name}", "error": str(exc)})
        out["resources"] = live
        now = self._syncz()
        out["syncz"] = ({k: v.types for k, v in now.items()} if now is not None
                        else self.last_error)
        ev = getattr(self.target, "evidence", None)
        if callable(ev):
            out["pods"] = ev(pods)
        return out
