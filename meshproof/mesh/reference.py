"""The reference mesh's adapter: intents -> control-plane policy, programmed = ACKed and live.

Programmed means, for every sidecar: the control plane saw it ACK the
policy's version for every xDS type (a NACK fails at once with Envoy's
message), and its admin stats show nothing still warming (Envoy ACKs before
warming ends). Only then may a test sample traffic.
"""

from __future__ import annotations

import time
from typing import Any

from meshproof.errors import MeshproofError, TargetError
from meshproof.intent import Intent, Policy
from meshproof.mesh.reference_local import CP_API_SOCKET, admin_socket

#: Features the reference mesh claims (conformance skips what a mesh does not claim).
CLAIMS = frozenset({"mtls-strict", "mtls-permissive", "mtls-workload-override",
                    "traffic-split", "traffic-split-match", "xfcc-spiffe", "server-identity",
                    "cert-validation", "access-control", "access-control-routes", "retries",
                    "timeouts", "fault-injection", "gamma-httproute"})


class ConfigRejected(MeshproofError):
    """A sidecar NACKed the config: the mesh keeps serving the last good one."""

    exit_code = 1


class ReferenceMesh:
    name = "reference"

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.sidecars = sorted(p["key"] for p in pods if p["meshed"])
        # The control plane holds the policy in force: start from it, so the CLI
        # and a test session share one truth.
        self.policy = Policy.from_dict(self._cp("GET", "/state").get("policy") or {})

    def _cp(self, method: str, url: str, body: Any = None) -> Any:
        from refmesh import unixhttp

        try:
            status, answer = unixhttp.request_json(CP_API_SOCKET, method, url, body, timeout=10)
        except OSError as exc:
            raise TargetError(f"the reference control plane is unreachable: {exc}",
                              "is the lab up with --mesh reference?") from exc
        if status >= 400:
            raise MeshproofError(f"control plane refused {method} {url}: {answer}")
        return answer

    def claims(self) -> frozenset[str]:
        return CLAIMS

    def _push(self) -> int:
        return int(self._cp("PUT", "/policy", self.policy.to_dict())["version"])

    def apply(self, intent: Intent) -> int:
        self.policy = self.policy.with_intent(intent)
        return self._push()

    def apply_all(self, intents: list[Intent]) -> int:
        """Apply several intents as one change (one version): a file of policy is atomic."""
        policy = self.policy
        for intent in intents:
            policy = policy.with_intent(intent)
        self.policy = policy
        return self._push()

    def remove(self, intent: Intent) -> int:
        self.policy = self.policy.without(intent)
        return self._push()

    def reset(self) -> int:
        self.policy = Policy()
        return self._push()

    def status(self) -> dict[str, Any]:
        return self._cp("GET", "/status")

    def wait_programmed(self, version: int, timeout: float = 10.0) -> float:
        """Block until every sidecar runs ``version``; returns the seconds it took."""
        from refmesh.admin import EnvoyAdmin
        from refmesh.controlplane import pending

        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            status = self.status()
            waiting = pending(status, version, self.sidecars)
            nacked = {n: why for n, why in waiting.items() if "NACK" in why}
            if nacked:
                node, why = next(iter(nacked.items()))
                raise ConfigRejected(f"sidecar {node} rejected version {version}: {why}",
                                     "the last good config keeps serving; fix the intent")
            if not waiting:
                warming = {p: EnvoyAdmin(admin_socket(p), timeout=2).warming()
                           for p in self.sidecars}
                if not any(warming.values()):
                    return time.monotonic() - t0
                waiting = {p: f"{n} resources warming" for p, n in warming.items() if n}
            if time.monotonic() > deadline:
                first = "; ".join(f"{k}: {v}" for k, v in list(waiting.items())[:3])
                raise TargetError(f"version {version} not programmed within {timeout}s: {first}")
            time.sleep(0.01)

    def evidence(self, pods: list[str]) -> dict[str, Any]:
        """Generated config and Envoy's own view (config dump, stats) of these sidecars."""
        from refmesh.admin import EnvoyAdmin

        out: dict[str, Any] = {"policy": self.policy.to_dict(), "cp_status": self.status()}
        for p in pods:
            if p not in self.sidecars:
                continue
            admin = EnvoyAdmin(admin_socket(p), timeout=5)
            try:
                out[p] = {"generated": self._cp("GET", f"/config/{p}"),
                          "config_dump": admin.config_dump(),
                          "stats": admin.stats(r"(rbac|ssl|upstream_rq|downstream_cx)")}
            except Exception as exc:
                out[p] = {"error": f"{type(exc).__name__}: {exc}"}
        return out
