"""The target interface: what a check may ask of the place the topology runs.

Checks never touch ip, iptables or kubectl: they go through this, so the same
check runs on the local lab and on a cluster. Values crossing it are the
dataclasses of ``meshproof.targets.model``. Pods are found by namespace,
workload and ordinal (``pod("team-a", "client")``), never by a target's own
naming. A target declares what it can do in ``capabilities()``; a check that
needs a missing capability is skipped with the reason (on the local lab
nothing is missing). Mesh operations (identities, certificates, config) are
not here: they belong to the mesh adapter (``meshproof.mesh.base``).
"""

from __future__ import annotations

from collections.abc import Callable

from abc import ABC, abstractmethod
from typing import Any

from meshproof.errors import TargetError, UnknownName
from meshproof.targets.model import (CaptureSummary, Pod, ProbeOrder, ProbeResult,
                                     ResourceUsage, ServiceInfo)

#: Capability names a target may declare (and checks may need).
CAPABILITIES = {
    "probe": "send HTTP requests from inside a pod",
    "probe-tls": "a probe with client TLS credentials placed in the pod",
    "probe-in-sidecar": "a probe from the sidecar's own identity (outside traffic capture)",
    "put-file": "place a file in a pod, readable by its app",
    "scale": "change a workload's replicas",
    "kill-pod": "kill a pod and bring it back",
    "components": "stop and start a named mesh component (sidecar, control plane, CA)",
    "block": "drop all traffic between two pods and heal it",
    "capture": "capture packets between two pods",
    "clock": "report the node's coarse clock tick (timer granularity of event loops)",
    "load": "run the open-loop load generator in a pod (meshproof.load)",
    "sidecar-usage": "CPU seconds and memory of a pod's sidecar process (load tests)",
    "pin-cpu": "pin a namespace's pod processes to one CPU (load tests)",
}


class LoadGenerator(ABC):
    """An open-loop load generator running in (or for) one pod.

    Orders and answers are the generators' JSON wire form (documented in
    docs/load.md, "The generator"), not dataclasses: two generators speak it
    (``loadtests/generator.py``, Locust; ``loadtests/podgen.py``, stdlib for
    stock images), the target only carries it, and the load harness owns its
    fields (``meshproof.load.hist.with_hdr`` reads either histogram encoding).
    """

    #: Where it runs, for messages and the report (``ns/pod``).
    label: str = ""

    @abstractmethod
    def run(self, order: dict[str, Any]) -> dict[str, Any]:
        """One run; blocks for its duration and returns the generator's answer."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """What the generator is (versions, loop, client), for the report."""

    @abstractmethod
    def stop(self) -> None:
        """Stop it (idempotent); nothing of it is left running in the pod."""


class Target(ABC):
    """Where the fixture topology runs. Implementations: ``targets.local`` (netns lab)."""

    #: Registry name (``--target``).
    name: str = ""

    @abstractmethod
    def capabilities(self) -> frozenset[str]:
        """The subset of ``CAPABILITIES`` this target honours."""

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities()

    # ------------------------------------------------------------ what runs

    @abstractmethod
    def pods(self) -> list[Pod]: ...

    @abstractmethod
    def services(self) -> list[ServiceInfo]: ...

    def pod(self, namespace: str, workload: str, ordinal: int = 0) -> Pod:
        """The pod ``ordinal`` of ``workload`` in ``namespace`` (what checks send from)."""
        for p in self.pods():
            if (p.namespace, p.workload, p.ordinal) == (namespace, workload, ordinal):
                return p
        known = sorted(f"{p.namespace}/{p.workload}#{p.ordinal}" for p in self.pods())
        raise UnknownName(f"no pod {ordinal} of workload {namespace}/{workload}",
                          f"pods: {', '.join(known)}")

    def workload_pods(self, namespace: str, workload: str) -> list[Pod]:
        return sorted((p for p in self.pods()
                       if (p.namespace, p.workload) == (namespace, workload)),
                      key=lambda p: p.ordinal)

    # ------------------------------------------------------------ traffic

    @abstractmethod
    def probe(self, src: Pod, order: ProbeOrder, *, in_sidecar: bool = False
              ) -> list[ProbeResult]:
        """Run ``order`` from ``src``; ``in_sidecar`` sends as the sidecar's uid/container,
        which traffic capture exempts (capability ``probe-in-sidecar``)."""

    @abstractmethod
    def put_file(self, pod: Pod, name: str, content: str) -> str:
        """Place ``content`` in ``pod`` readable by its app; returns the path in the pod."""

    # ------------------------------------------------------------ load

    def load_generator(self, pod: Pod) -> LoadGenerator:
        """Start a load generator in ``pod``; its traffic is the pod's (captured by the
        pod's sidecar when meshed). Capability ``load``."""
        raise TargetError(f"the {self.name} target cannot run a load generator",
                          "load tests need a target with the 'load' capability")

    def sidecar_usage(self, pod: Pod) -> ResourceUsage | None:
        """CPU and memory of ``pod``'s sidecar now (capability ``sidecar-usage``); None
        when there is no sidecar or the target cannot measure it."""
        return None

    def pin_cpu(self, namespaces: list[str], cpu: int) -> int:
        """Pin every process of these namespaces' pods to ``cpu``; returns how many
        (capability ``pin-cpu``)."""
        raise TargetError(f"the {self.name} target cannot pin pods to a CPU",
                          "leave out --pin-cpu on this target")

    def prioritize(self, namespaces: list[str], realtime: bool, nice: int
                   ) -> tuple[str, Callable[[], None]]:
        """Let these namespaces' pods have the CPU first while a measurement runs
        (real time or ``nice``), so a busy neighbour does not pass for their latency;
        returns what was done ("" for nothing) and how to undo it. Default: nothing
        (a cluster's nodes schedule their own pods)."""
        return "", lambda: None

    # ------------------------------------------------------------ faults

    @abstractmethod
    def scale(self, namespace: str, workload: str, replicas: int) -> list[Pod]: ...

    @abstractmethod
    def kill_pod(self, pod: Pod) -> None: ...

    @abstractmethod
    def revive_pod(self, pod: Pod) -> None: ...

    @abstractmethod
    def components(self) -> dict[str, bool]:
        """Named processes the target can stop and start, and whether each runs."""

    @abstractmethod
    def stop_component(self, name: str) -> None: ...

    @abstractmethod
    def start_component(self, name: str) -> None: ...

    def restarts(self) -> dict[str, int]:
        """Unplanned restarts so far, per component (a crashed sidecar brought back by
        the target's supervisor). Reports record those that happen during a check;
        a target that cannot tell returns {}."""
        return {}

    @abstractmethod
    def block(self, a: Pod, b: Pod) -> None: ...

    @abstractmethod
    def unblock(self, a: Pod, b: Pod) -> None: ...

    # ------------------------------------------------------------ evidence

    @abstractmethod
    def capture_start(self, src: Pod, dst: Pod) -> str:
        """Start capturing traffic between two pods; returns a capture id."""

    @abstractmethod
    def capture_stop(self, capture_id: str, marker: str = "") -> CaptureSummary: ...

    @abstractmethod
    def down(self) -> dict[str, list[str]]:
        """Remove everything this target made for the run; returns what was removed."""

    @abstractmethod
    def clock_tick_s(self) -> float:
        """Resolution of the node's CLOCK_MONOTONIC_COARSE: the timer granularity of
        event loops that read it (Envoy's libevent does), for timing bounds."""
