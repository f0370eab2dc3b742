"""Negative controls for every xDS defect a conformance check declares, on one lab.

test_defects.py brings a lab up per defect and mode (~10-20 s each): for the
forty-odd xDS defects that is far beyond the CI tier. Here one healthy lab
serves them all: the reference mesh's installer switches the control plane's
xDS defect at runtime (``mesh_call("set_defect")``, the same option a lab
brought up with ``--defect`` gets, pushed to every sidecar), then every check
that declares the defect is run, in both modes (the ACK adapter and the
black-box adapter on the same lab), and must fail; with the defect cleared
again, a check passes. The checks are the product's own functions, called as
pytest would. The nightly matrix (test_defects.py, slow) still runs each
defect against the whole suite in its own lab; the defects that need a
bring-up (the CA's, the agent's, the control plane's ACK handling) keep
their own-lab pairs in the CI tier there.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshproof import registry
from meshproof.conformance.check import REGISTRY
from meshproof.mesh.defects import IMPLEMENTED
from meshproof.mesh.base import MeshAdapter
from meshproof.pytest_plugin import start_target
from meshproof.targets.base import Target
from meshproof.verdict.judgement import Verdict
from tests.conftest import needs_root

pytestmark = [pytest.mark.lab, pytest.mark.mesh, needs_root]

ROOT = Path(__file__).resolve().parents[2]


#: xDS defects a live switch cannot show, and why: they change how the server side's
#: HTTP connection manager treats a connection that already exists, and Envoy keeps a
#: caller's pooled connection on the old filter chain while it drains (up to its drain
#: time), so the check would judge the config from before the switch. Their own-lab
#: pairs (test_defects.py) run them in the CI tier instead.
NOT_LIVE = {
    "xfcc-forwarded": "inbound HCM's forward_client_cert_details: pooled callers keep the old",
    "xfcc-h2-unset": "inbound HTTP/2 HCM's XFCC setting: pooled callers keep the old",
}


def _live_defects() -> tuple[str, ...]:
    """Every implemented xDS defect some conformance check declares (the control plane
    injects them, so they switch on a running lab), less ``NOT_LIVE``."""
    from refmesh.xds.defects import XDS_DEFECTS

    declared = {d for spec in _registry().values() for d in spec.catches}
    return tuple(sorted((declared & XDS_DEFECTS & IMPLEMENTED) - set(NOT_LIVE)))


def _registry() -> dict:
    for f in sorted((ROOT / "conformance").glob("test_*.py")):
        importlib.import_module(f"conformance.{f.stem}")
    return REGISTRY


MODES = ("reference", "reference-blackbox")


def checks_catching(defect: str) -> list[tuple[str, Callable[..., Any]]]:
    """(check name, test function) of every conformance check declaring ``defect``."""
    _registry()
    fns = {m.args[0].name: fn
           for f in sorted((ROOT / "conformance").glob("test_*.py"))
           for name, fn in vars(importlib.import_module(f"conformance.{f.stem}")).items()
           if name.startswith("test_")
           for m in getattr(fn, "pytestmark", []) if m.name == "conformance"}
    return [(n, fns[n]) for n, spec in sorted(REGISTRY.items())
            if defect in spec.catches and n in fns]


#: Every xDS defect a conformance check declares: switched on one lab, both modes.
LIVE_DEFECTS = _live_defects()


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


def test_every_live_defect_has_a_check_function() -> None:
    assert LIVE_DEFECTS, "no xDS defect is declared by a conformance check"
    for d in LIVE_DEFECTS:
        assert checks_catching(d), f"no conformance check function declares {d}"


@pytest.mark.parametrize("mode", MODES)
def test_live_defects_fail_their_checks(lab: Target, adapters: dict[str, MeshAdapter],
                                         mode: str) -> None:
    mesh = adapters[mode]
    passed: list[str] = []
    unjudged: list[str] = []  # "cannot judge" (a check's control group: too loaded)
    try:
        for defect in LIVE_DEFECTS:
            lab.mesh_call("set_defect", defect=defect)  # type: ignore[attr-defined]
            for name, fn in checks_catching(defect):
                try:
                    run_check(fn, lab, mesh)
                except AssertionError:
                    continue
                except pytest.skip.Exception as why:  # not a fail: the control not shown
                    unjudged.append(f"{name} under {defect}: {why}")
                    continue
                passed.append(f"{name} under {defect}")
    finally:
        lab.mesh_call("set_defect", defect="")  # type: ignore[attr-defined]
        mesh.wait_programmed(mesh.reset())
    assert not passed, f"{mode}: checks that passed with their defect: {passed}"
    assert not unjudged, f"{mode}: negative controls not shown (cannot judge): {unjudged}"
    if mode == "reference":
        # Healthy again: a check passes (a defect switched off really is off). One is
        # enough to prove the switch: every check's healthy pass is the conformance
        # package's (its own lab), the black box's the nightly matrix's.
        run_check(checks_catching(LIVE_DEFECTS[-1])[0][1], lab, mesh)
        mesh.wait_programmed(mesh.reset())
