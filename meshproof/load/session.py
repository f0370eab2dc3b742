"""The load lab's lifetime: wait for the machine, bring up, start generators, tear down.

Only one lab can run on a machine and others run tests on it too: a running
lab is someone else's, so we wait for it (polling every 15 s, bounded)
instead of tearing it down, and we only ever stop the lab we started.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from meshproof.errors import TargetError
from meshproof.load import analysis, genclient
from meshproof.load.runner import ScenarioRun, pin
from meshproof.load.settings import LoadSettings
from meshproof.load.topology import CLIENT_POD, MESH_NS, PLAIN_NS
from meshproof.targets.local import lock, netns
from meshproof import registry
from meshproof.targets.local.client import LocalTarget, stop_lab

POLL_S = 15.0


def wait_for_machine(wait_s: float, log: Any = print) -> None:
    """Block until no lab runs (someone else's lab is never torn down)."""
    deadline = time.monotonic() + wait_s
    while LocalTarget.running() or lock.holder() is not None:  # running, or still starting
        if time.monotonic() > deadline:
            raise TargetError(f"another lab is still running after {wait_s:.0f}s",
                              "retry when it is gone ('meshproof status'); never tear "
                              "down someone else's lab")
        log(f"a lab is running (someone else's): waiting {POLL_S:.0f} s")
        time.sleep(POLL_S)


class LoadSession:
    def __init__(self, defect: str = "", wait_s: float = 300.0, log: Any = print) -> None:
        self.defect = defect
        self.wait_s = wait_s
        self.log = log
        self.target: LocalTarget | None = None
        self.gens: list[genclient.Generator] = []

    def __enter__(self) -> LoadSession:
        # Never tear down someone else's lab: wait (bounded) until the machine is free;
        # the registry's start retries if another run takes it between look and start.
        wait_for_machine(self.wait_s, self.log)
        t0 = time.monotonic()
        self.target = registry.start_target(  # type: ignore[assignment]
            "local", "reference", self.defect, topology="load")
        self.log(f"load lab up in {time.monotonic() - t0:.1f} s (mesh=reference"
                 + (f", defect={self.defect}" if self.defect else "") + ")")
        try:
            self.plain = genclient.in_pod(self.target, f"{PLAIN_NS}/{CLIENT_POD}")
            self.gens.append(self.plain)
            self.mesh = genclient.in_pod(self.target, f"{MESH_NS}/{CLIENT_POD}")
            self.gens.append(self.mesh)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None,
                 _tb: TracebackType | None) -> None:
        for g in self.gens:
            g.stop()
        self.gens.clear()
        if self.target is not None:
            self.target = None
            stop_lab()  # ours: we started it in __enter__

    def _pin(self, cpu: int) -> None:
        pids = [pid for ns in netns.list_ours() if ns.startswith(netns.pod_netns("load", ""))
                for pid in netns.pids_in(ns)]
        pin(cpu, pids)
        self.log(f"pinned {len(pids)} pod processes to CPU {cpu}")

    def mtls_evidence(self) -> dict[str, int]:
        """TLS handshakes each meshed sidecar saw: proof the meshed path is mTLS."""
        from refmesh.admin import EnvoyAdmin

        from meshproof.mesh.refpaths import admin_socket

        out = {}
        assert self.target is not None
        for p in self.target.pods():
            if p.meshed:
                stats = EnvoyAdmin(admin_socket(p.namespace, p.name),
                                   timeout=5).stats(r"ssl\.handshake$")
                out[p.key] = sum(stats.values())
        return out

    def measure(self, settings: LoadSettings, command: str) -> dict[str, Any]:
        from meshproof.load import report

        if settings.pin_cpu is not None:
            self._pin(settings.pin_cpu)
        runner = ScenarioRun(self.plain, self.mesh, settings, self.log)
        scenarios = {sc.name: analysis.summarize(runner.run(sc)) for sc in settings.scenarios}
        gen = self.mesh.info()
        return report.document(
            scenarios, settings.to_dict(), command,
            generator={k: gen[k] for k in ("gevent", "locust", "backend")}
            | {"client": "RawSession (loadtests/rawhttp.py) under Locust users",
               "scheduler": "open loop, select() sleep + yield-spin"},
            mesh={"name": "reference", "defect": self.defect, "envoy_concurrency": 1,
                  "tls_handshakes": self.mtls_evidence()})
