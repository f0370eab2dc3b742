"""Negative controls for the HTTPRoute translation defects, on one lab.

test_defects.py brings a lab up per defect and mode (~20 s each): for the
sixteen small xDS defects of the route translation that would be ten
minutes. Here one healthy lab serves them all: the reference mesh's
installer switches the control plane's xDS defect at runtime
(``mesh_call("set_defect")``), then every check that declares the defect is
run, in both modes (the ACK adapter and the black-box adapter on the same
lab), and must fail; with the defect cleared again, a check passes. The
checks are the product's own functions, called as pytest would.
The nightly matrix (test_defects.py, slow) still runs each of them against
the whole suite in its own lab.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from meshproof import registry
from meshproof.conformance.check import REGISTRY
from meshproof.mesh.base import MeshAdapter
from meshproof.pytest_plugin import start_target
from meshproof.targets.base import Target
from meshproof.verdict.judgement import Verdict
from tests.conftest import needs_root

pytestmark = [pytest.mark.lab, pytest.mark.mesh, needs_root]

MODULE = "conformance.test_gateway_mesh"
#: The route translation's defects (refmesh.xds.httproutes), switched on one lab.
ROUTE_DEFECTS = (
    "backend-filter-dropped", "consumer-route-leaks", "header-modifier-dropped",
    "path-prefix-not-segment", "precedence-reversed", "precedence-rule-order",
    "producer-route-dropped", "query-match-ignored", "redirect-host-dropped",
    "redirect-path-dropped", "redirect-port-dropped", "redirect-scheme-dropped",
    "redirect-status-wrong", "response-header-modifier-dropped", "rewrite-dropped",
    "route-by-host", "port-ignored",
)
MODES = ("reference", "reference-blackbox")


def checks_catching(defect: str) -> list[tuple[str, Callable[..., Any]]]:
    """(check name, test function) of every Gateway API check declaring ``defect``."""
    mod = importlib.import_module(MODULE)
    fns = {m.args[0].name: fn for name, fn in vars(mod).items() if name.startswith("test_")
           for m in getattr(fn, "pytestmark", []) if m.name == "conformance"}
    return [(n, fns[n]) for n, spec in sorted(REGISTRY.items())
            if defect in spec.catches and n in fns]


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[Target]:
    yield from start_target(request.config, mesh="reference", defect="")


@pytest.fixture(scope="module")
def adapters(lab: Target) -> dict[str, MeshAdapter]:
    return {m: registry.adapter_for(registry.mesh_entry(m), lab) for m in MODES}


def run_check(fn: Callable[..., Any], target: Target, mesh: MeshAdapter) -> Verdict:
    """One check as pytest runs it, from a reset mesh; raises if it fails. (The
    ``mesh`` fixture also resets after: here the next run's reset does that.)"""
    mesh.wait_programmed(mesh.reset())
    verdict = Verdict(fn.__name__)
    fn(target=target, mesh=mesh, verdict=verdict)
    return verdict


def test_every_route_defect_is_declared_by_a_gateway_check() -> None:
    from meshproof.mesh.defects import IMPLEMENTED

    assert set(ROUTE_DEFECTS) <= IMPLEMENTED
    for d in ROUTE_DEFECTS:
        assert checks_catching(d), f"no Gateway API check declares {d}"


@pytest.mark.parametrize("mode", MODES)
def test_route_defects_fail_their_checks(lab: Target, adapters: dict[str, MeshAdapter],
                                         mode: str) -> None:
    mesh = adapters[mode]
    passed: list[str] = []
    try:
        for defect in ROUTE_DEFECTS:
            lab.mesh_call("set_defect", defect=defect)  # type: ignore[attr-defined]
            for name, fn in checks_catching(defect):
                try:
                    run_check(fn, lab, mesh)
                except AssertionError:
                    continue
                passed.append(f"{name} under {defect}")
    finally:
        lab.mesh_call("set_defect", defect="")  # type: ignore[attr-defined]
        mesh.wait_programmed(mesh.reset())
    assert not passed, f"{mode}: checks that passed with their defect: {passed}"
    if mode == "reference":
        # Healthy again: a check passes (a defect switched off really is off). One is
        # enough to prove the switch: every check's healthy pass is the conformance
        # package's (its own lab), the black box's the nightly matrix's.
        run_check(checks_catching(ROUTE_DEFECTS[-1])[0][1], lab, mesh)
        mesh.wait_programmed(mesh.reset())
