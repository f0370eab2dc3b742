"""The fixture topology as a Registry, so references are checked without a lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshproof.targets.model import Pod, Registry, Service
from meshproof.topology import fixture_topology

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "fixtures" / "policies"
BAD = Path(__file__).resolve().parent / "bad"
DOC = ROOT / "docs" / "policy.md"


def topology_registry() -> Registry:
    t = fixture_topology()
    services = [Service(spec, vip=f"198.19.0.{i + 1}") for i, spec in enumerate(t.services)]
    pods = [Pod(namespace=w.namespace, name=f"{w.name}-{r}", workload=w.name,
                ip=f"198.18.0.{i * 4 + r + 1}", labels=w.labels, service_account=w.sa,
                meshed=w.namespace != "outside", ready=True)
            for i, w in enumerate(t.workloads) for r in range(w.replicas)]
    return Registry(services=services, pods=pods)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return topology_registry()
