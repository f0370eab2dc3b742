"""The reference mesh as a black box: policy files in, the sentinel method out.

This is how every third-party mesh is driven (DESIGN.md): no ACK reading, no
admin socket, no version counter. ``apply`` writes the whole set of policy
files the test has stated (SMI, meshproof kinds, as a user would write them)
and hands them to the mesh the way ``meshproof apply -f`` does; the set
always carries one more resource, the **sentinel**: a 100% abort fault on
the ``bookinfo/sentinel`` service (which has no endpoints, so nothing else
uses it) with a status that changes on every apply. ``wait_programmed``
then asks every meshed pod for the sentinel until each one has answered
with the new status ``CONSECUTIVE`` times in a row on fresh connections:
the sidecar has taken the push that carried the change, and a proxy that
flaps between old and new config is ridden out. Bounded in count and time.

Why this proves the change: the reference control plane (like istiod) sends
each sidecar one snapshot per version, so the sentinel's route and the
change travel together; a mesh that programs the change later than the
sentinel is exactly what the programmed-signal checks exist to catch.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from meshproof import __version__
from meshproof.intent import Fault, Intent, Policy
from meshproof.mesh.base import DeclaredResources, MeshInfo, NotProgrammed, Token
from meshproof.mesh.reference import ReferenceMesh, envoy_version
from meshproof.policy.render import render
from meshproof.targets.base import Target
from meshproof.targets.model import Pod, ProbeOrder

SENTINEL_SERVICE = "bookinfo/sentinel"
SENTINEL_URL = "http://sentinel.bookinfo/meshproof-sentinel"
#: Sentinel statuses cycle through unassigned 4xx codes, distinct between neighbours.
SENTINEL_CODES = tuple(range(460, 500))
#: Consecutive fresh-connection answers with the new status each pod must give.
CONSECUTIVE = 3
#: Rounds per pod before giving up (each round is one short batch): bounded in count.
MAX_ROUNDS = 400


def sentinel_status(generation: int) -> int:
    return SENTINEL_CODES[generation % len(SENTINEL_CODES)]


def sentinel(generation: int) -> Fault:
    return Fault(SENTINEL_SERVICE, abort_status=sentinel_status(generation), abort_percent=100)


class ReferenceBlackbox(DeclaredResources, ReferenceMesh):
    """Config and "programmed" as a black box. The workload-side capabilities (a
    certificate as a pod would get one, an impostor, a process beside the sidecar, a
    short certificate TTL) are kept from ReferenceMesh: they are not how config reaches
    the mesh. The TTL is an install setting of any mesh (istiod's workload-certificate
    TTL, Linkerd's issuance lifetime), changed by its operator tooling, which waits for
    the rollout; the rotation checks then observe only what any mesh shows (the
    caller's certificate hash in XFCC, status codes), never the agent's files."""

    name = "reference-blackbox"

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.resources: dict[str, Intent] = {}
        self.generation = 0
        self.files: list[str] = []

    def describe(self) -> MeshInfo:
        return MeshInfo(self.name, f"meshproof {__version__}", "sentinel",
                        {"envoy": envoy_version(), "sentinel": SENTINEL_URL,
                         "consecutive": str(CONSECUTIVE)})

    # ------------------------------------------------------------ config as files

    def _publish(self) -> Token:
        """Render the whole resource set plus a new sentinel and apply it as one file."""
        from meshproof.policy import load_text
        from meshproof.policy.registry import registry_of

        self.generation += 1
        intents = [*self.resources.values(), sentinel(self.generation)]
        text = render(intents)
        self.files.append(text)
        loaded = load_text(text, f"blackbox-{self.generation}.yaml",
                           registry=registry_of(self.target))
        policy = Policy()
        for intent in loaded:
            policy = policy.with_intent(intent)
        self.cp.push(policy)  # the version it answers is not read: a black box has none
        return Token(self.name, self.generation)

    # ------------------------------------------------------------ the sentinel method

    def _wait(self, token: Token, timeout: float) -> None:
        want = sentinel_status(int(token.value))
        deadline = time.monotonic() + timeout
        pods = [p for p in self.target.pods() if p.meshed and p.ready]
        with ThreadPoolExecutor(max_workers=min(8, len(pods) or 1)) as pool:
            results = list(pool.map(lambda p: self._converge(p, want, deadline), pods))
        late = [msg for msg in results if msg]
        if late:
            raise NotProgrammed(
                f"sentinel {want} not seen {CONSECUTIVE}x in a row within {timeout}s by "
                f"{len(late)} of {len(pods)} pods: {'; '.join(late[:3])}",
                "the mesh did not program the change (or programs it slowly)")

    def _converge(self, pod: Pod, want: int, deadline: float) -> str:
        """'' once ``pod`` saw ``want`` CONSECUTIVE times in a row, else what it saw."""
        order = ProbeOrder(SENTINEL_URL, count=CONSECUTIVE, concurrency=1, fresh=True,
                           timeout_s=2.0, deadline_s=5.0, keep_body=False)
        seen: list[str] = []
        for _ in range(MAX_ROUNDS):
            outcomes = [r.outcome for r in self.target.probe(pod, order)]
            if all(o == str(want) for o in outcomes):
                return ""
            seen = outcomes
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        return f"{pod.key} saw {seen}"

    def evidence(self, pods: list[Pod]) -> dict[str, Any]:
        """Only what a user of a black box has: the files applied (the last three)."""
        return {"policy_files": self.files[-3:], "generation": self.generation}
