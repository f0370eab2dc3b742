"""Gateway API's v1.6 mesh conformance manifests (issue 15's first Done-when item).

Gateway API's 21 mesh manifests are its base manifest (the Services and
workloads: our fixture topology) and 20 route manifests, re-created under
fixtures/gateway-api/mesh/ with this topology's names. Its 22 mesh tests apply
them: MeshBasic none beyond the base, MeshFrontend and MeshFrontendHostname
the same one, every other test its own. Here, without a lab:
every one loads against the fixture topology as a user's file would (each on
its own and all at once), each is applied by the conformance check of its
Gateway API test, and every Gateway API test has its check registered. That
each one then behaves as its test expects, on real traffic, is those checks'
job (they run in the CI tier too).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from meshproof.conformance import gatewayapi
from meshproof.conformance.check import REGISTRY
from meshproof.policy.loader import load_files
from meshproof.targets.model import Registry

ROOT = Path(__file__).resolve().parents[2]
MESH = ROOT / "fixtures" / "gateway-api" / "mesh"
CHECKS = ROOT / "conformance" / "test_gateway_mesh.py"
MANIFESTS = sorted(MESH.glob("*.yaml"))


def test_twenty_route_manifests_and_twenty_two_tests() -> None:
    assert len(MANIFESTS) == 20, [p.name for p in MANIFESTS]
    assert len(gatewayapi.TESTS) == 22


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_each_manifest_loads(path: Path, registry: Registry) -> None:
    intents = load_files([path], registry=registry)
    assert intents, f"{path.name} gives no intent"
    assert {type(i).__name__ for i in intents} == {"HTTPRoute"}


def test_all_manifests_load_together(registry: Registry) -> None:
    assert len(load_files(MANIFESTS, registry=registry)) >= len(MANIFESTS)


def test_each_manifest_is_applied_by_a_gateway_check() -> None:
    source = CHECKS.read_text()
    used = set(re.findall(r'manifest\((?:f?"([^"{]+)|f"httproute-\{code\}-redirect")', source))
    used |= {f"httproute-{c}-redirect" for c in (303, 307, 308)}
    assert {p.stem for p in MANIFESTS} <= used, {p.stem for p in MANIFESTS} - used


def test_every_gateway_test_has_its_check() -> None:
    importlib.import_module("conformance.test_gateway_mesh")
    missing = [t.name for t in gatewayapi.TESTS if t.check not in REGISTRY]
    assert not missing, missing
