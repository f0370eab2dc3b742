"""Test doubles, named as such: a FAKE target and FAKE meshes, no root, no lab.

Loaded into a pytest run with ``-p tests.unit.fakes``, this module registers
``--target fake`` and the meshes ``fake-nothing`` (claims nothing),
``fake-faults`` (claims fault-injection only) and ``fake-mtls`` (claims the
mTLS features). The fake target runs no pods: every probe answers what
``FAKE_STATUS`` says (503 unless the environment sets it), which is enough
to drive the plugin's gating, reports and exit codes through real checks.
"""

from __future__ import annotations

import os
from typing import Any

from meshproof import registry
from meshproof.intent import Intent
from meshproof.mesh.base import MeshAdapter, MeshInfo, Token
from meshproof.targets.base import Target
from meshproof.targets.model import CaptureSummary, Pod, ProbeOrder, ProbeResult, ServiceInfo
from meshproof.topology import fixture_topology


class FakeTarget(Target):
    """A FAKE target: the fixture topology's pods on paper; probes answer FAKE_STATUS."""

    name = "fake"

    def __init__(self) -> None:
        t = fixture_topology()
        self._pods = [Pod(namespace=w.namespace, name=f"{w.name}-{r}", workload=w.name,
                          ip=f"198.18.9.{i + 1}", labels=w.labels, service_account=w.sa,
                          meshed=w.namespace != "outside", ready=True, ordinal=r)
                      for i, w in enumerate(t.workloads) for r in range(w.replicas)]
        self._services = [ServiceInfo(s.namespace, s.name, f"198.19.9.{i + 1}", s.port,
                                      s.target_port, dict(s.selector))
                          for i, s in enumerate(t.services)]
        self.status = int(os.environ.get("FAKE_STATUS", "503"))
        self.downs = 0

    def capabilities(self) -> frozenset[str]:
        return frozenset({"probe", "put-file", "clock"})  # no capture: the wire check skips

    def pods(self) -> list[Pod]:
        return list(self._pods)

    def services(self) -> list[ServiceInfo]:
        return list(self._services)

    def probe(self, src: Pod, order: ProbeOrder, *, in_sidecar: bool = False
              ) -> list[ProbeResult]:
        latency_us = int(os.environ.get("FAKE_LATENCY_US", "1000"))
        return [ProbeResult(status=self.status, latency_us=latency_us)
                for _ in range(order.count)]

    def put_file(self, pod: Pod, name: str, content: str) -> str:
        return f"/fake/{pod.key}/{name}"

    def _no(self, *_: Any) -> Any:
        raise NotImplementedError("the FAKE target cannot do this")

    scale = kill_pod = revive_pod = stop_component = start_component = _no  # type: ignore
    block = unblock = capture_start = _no  # type: ignore

    def capture_stop(self, capture_id: str, marker: str = "") -> CaptureSummary:
        return self._no()  # type: ignore[no-any-return]

    def components(self) -> dict[str, bool]:
        return {}

    def restarts(self) -> dict[str, int]:
        """With FAKE_RESTARTS=1, a FAKE sidecar 'crashes' once between any two looks."""
        if os.environ.get("FAKE_RESTARTS") != "1":
            return {}
        self._looks = getattr(self, "_looks", 0) + 1
        return {"team-b/echo-0/sidecar": self._looks}

    def down(self) -> dict[str, list[str]]:
        self.downs += 1
        return {}

    def clock_tick_s(self) -> float:
        return 0.004


class FakeMesh(MeshAdapter):
    """A FAKE mesh: claims what its subclass says; "programmed" at once."""

    CLAIMS: frozenset[str] = frozenset()

    def claims(self) -> frozenset[str]:
        return self.CLAIMS

    def describe(self) -> MeshInfo:
        return MeshInfo(self.name, "fake", "none")

    def _token(self) -> Token:
        return Token(self.name, 0)

    def apply(self, intent: Intent) -> Token:
        return self._token()

    def apply_all(self, intents: list[Intent]) -> Token:
        return self._token()

    def remove(self, intent: Intent) -> Token:
        return self._token()

    def reset(self) -> Token:
        return self._token()

    def _wait(self, token: Token, timeout: float) -> None:
        return None


class FakeNothing(FakeMesh):
    name = "fake-nothing"


class FakeFaults(FakeMesh):
    name = "fake-faults"
    CLAIMS = frozenset({"fault-injection"})


class FakeMTLS(FakeMesh):
    name = "fake-mtls"
    CLAIMS = frozenset({"mtls-strict", "mtls-permissive"})


def start_fake(mesh: registry.MeshEntry, defect: str, **_: Any) -> FakeTarget:
    return FakeTarget()


registry.register_target(registry.TargetEntry(
    "fake", "FAKE target (test double)", start="tests.unit.fakes:start_fake",
    attach="tests.unit.fakes:FakeTarget"))
for cls in (FakeNothing, FakeFaults, FakeMTLS):
    registry.register_mesh(registry.MeshEntry(
        cls.name, "FAKE mesh (test double)", f"tests.unit.fakes:{cls.__name__}", "none"))
