"""A load session's lifetime: bring up the twins on a target, start generators, tear down.

Everything goes through the target and mesh interfaces (no branch on a
target's name): the registry brings up the ``load`` topology on
``--target`` with ``--mesh`` (the local lab queues behind another lab on the
machine; a cluster refuses a live run's namespaces), each client pod of
both twins gets a generator (``Target.load_generator``), the sidecars'
costs come from ``Target.sidecar_usage`` and the mTLS evidence from the
mesh adapter. ``__exit__`` stops the generators and removes everything the
run made (local: the lab; kube: the run's objects by run label), on
success, on error and on Ctrl-C.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from meshproof import registry
from meshproof.errors import TargetError
from meshproof.load import analysis
from meshproof.load.group import GeneratorGroup
from meshproof.load.runner import SIDECARS, Samplers, ScenarioRun
from meshproof.load.settings import LoadSettings
from meshproof.load.topology import CLIENT, MESH_NS, PLAIN_NS
from meshproof.mesh.base import MeshAdapter
from meshproof.targets.base import Target
from meshproof.targets.model import Pod

DEFAULT_CLIENT_TEXT = {"client": "RawSession (loadtests/rawhttp.py) under Locust users",
                       "scheduler": "open loop, select() sleep + yield-spin"}


class LoadSession:
    def __init__(self, defect: str = "", wait_s: float = 300.0, log: Any = print, *,
                 target: str = "local", mesh: str = "reference", clients: int = 1,
                 **target_options: Any) -> None:
        self.defect = defect
        self.wait_s = wait_s
        self.log = log
        self.target_name = target
        self.mesh_name = mesh
        self.clients = clients
        self.options = target_options
        self.target: Target | None = None
        self.adapter: MeshAdapter | None = None
        self.groups: list[GeneratorGroup] = []

    def __enter__(self) -> LoadSession:
        t0 = time.monotonic()
        # Validated (names, defect) before anything is made; each target queues or
        # refuses on its own when someone else's run holds it (bounded by wait_s).
        self.target = registry.start_target(
            self.target_name, self.mesh_name, self.defect, topology="load",
            load_clients=self.clients, wait_s=self.wait_s, **self.options)
        try:
            self.log(f"load twins up in {time.monotonic() - t0:.1f} s (target="
                     f"{self.target_name}, mesh={self.mesh_name}"
                     + (f", defect={self.defect}" if self.defect else "") + ")")
            if not self.target.supports("load"):
                raise TargetError(f"the {self.target_name} target cannot run load generators")
            self.adapter = registry.adapter_for(
                registry.mesh_entry(self.mesh_name, self.target_name), self.target)
            self.plain = self._group(PLAIN_NS)
            self.mesh = self._group(MESH_NS)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _group(self, namespace: str) -> GeneratorGroup:
        assert self.target is not None
        pods = self.target.workload_pods(namespace, CLIENT)
        if len(pods) != self.clients:
            raise TargetError(f"{namespace}: {len(pods)} client pods, expected {self.clients}")
        gens = []
        try:
            for p in pods:
                gens.append(self.target.load_generator(p))
        except BaseException:
            for g in gens:
                g.stop()
            raise
        group = GeneratorGroup(gens)
        self.groups.append(group)
        if len(gens) > 1:
            self.log(f"{namespace}: {len(gens)} generators start together "
                     f"{group.calibrate():.2f} s after their order is sent")
        return group

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        try:
            for g in self.groups:
                g.stop()
        finally:
            self.groups.clear()
            if self.target is not None:
                target, self.target = self.target, None
                target.down()  # ours: we brought it up in __enter__

    def _sidecars(self, scenario: str) -> Samplers:
        """The scenario's meshed pods whose sidecars the target can measure."""
        assert self.target is not None
        target = self.target
        if not target.supports("sidecar-usage"):
            return {}

        def sampler(p: Pod) -> Any:
            return lambda: target.sidecar_usage(p)

        return {p.key: sampler(p) for wl in SIDECARS[scenario]
                for p in target.workload_pods(MESH_NS, wl)[:1]}

    def mtls_evidence(self) -> dict[str, int]:
        """TLS handshakes each meshed sidecar saw (the mesh's own counters): proof the
        meshed path is mTLS; {} when the mesh cannot tell."""
        assert self.target is not None and self.adapter is not None
        return self.adapter.tls_handshakes([p for p in self.target.pods() if p.meshed]) or {}

    def measure(self, settings: LoadSettings, command: str) -> dict[str, Any]:
        from meshproof.load import report

        assert self.target is not None and self.adapter is not None
        if settings.pin_cpu is not None:
            n = self.target.pin_cpu([PLAIN_NS, MESH_NS], settings.pin_cpu)
            self.log(f"pinned {n} pod processes to CPU {settings.pin_cpu}")
        target = self.target
        runner = ScenarioRun(self.plain, self.mesh, settings, self.log, self._sidecars,
                             lambda rt: target.prioritize([PLAIN_NS, MESH_NS], rt,
                                                          settings.nice))
        scenarios = {sc.name: analysis.summarize(runner.run(sc)) for sc in settings.scenarios}
        gen = self.mesh.info()
        info = self.adapter.describe()
        return report.document(
            scenarios, settings.to_dict(), command,
            generator={k: gen.get(k, "") for k in ("gevent", "locust", "backend")}
            | {k: gen.get(k, v) for k, v in DEFAULT_CLIENT_TEXT.items()}
            | {"per_path": len(self.mesh.gens), "pods": self.plain.labels + self.mesh.labels,
               "start_ahead_s": gen["start_ahead_s"]},
            mesh={"name": self.mesh_name, "version": info.version, "defect": self.defect,
                  "envoy_concurrency": _int_or_str(info.details.get("envoy_concurrency", "")),
                  "tls_handshakes": self.mtls_evidence()},
            target=self.target_name)


def _int_or_str(value: str) -> int | str:
    return int(value) if value.isdigit() else value
