"""pytest fixtures for running checks against a target and a mesh.

``lab``: the fixture topology on the local target, with the mesh chosen by
``--mesh`` (default: reference), one per test package (one lab per machine).
``mesh``: the mesh adapter, reset to no policy around each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from meshproof.mesh.reference import ReferenceMesh
from meshproof.target.local.client import LocalTarget, stop_lab


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshproof")
    group.addoption("--target", default="local", help="local (default); kube is not yet available")
    group.addoption("--mesh", default="reference", help="reference (default)")


def start_lab(**kw: object) -> Iterator[LocalTarget]:
    """Start a lab for one package and always remove it (one lab per machine)."""
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root")
    if LocalTarget.running():
        pytest.fail("a lab is already running; run 'meshproof down' first")
    target = LocalTarget.start(**kw)  # type: ignore[arg-type]
    try:
        yield target
    finally:
        stop_lab()


@pytest.fixture(scope="package")
def lab(request: pytest.FixtureRequest) -> Iterator[LocalTarget]:
    target, mesh = request.config.getoption("--target"), request.config.getoption("--mesh")
    if target != "local":
        pytest.exit(f"unknown or unavailable target {target!r}: use --target local", 2)
    if mesh not in ("reference", "none"):
        pytest.exit(f"unknown mesh {mesh!r}: meshes are reference, none", 2)
    marker = request.node.get_closest_marker("mesh_under_test")
    yield from start_lab(mesh=marker.args[0] if marker else mesh)


@pytest.fixture
def mesh(lab: LocalTarget) -> Iterator[ReferenceMesh]:
    m = ReferenceMesh(lab.pods())
    m.wait_programmed(m.reset())
    yield m
    m.wait_programmed(m.reset())
