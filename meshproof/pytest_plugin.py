"""The meshproof pytest plugin: target and mesh fixtures, conformance options.

Fixtures (the same on every target and mesh, resolved through
``meshproof.registry``):
- ``target``: the fixture topology on ``--target`` with ``--mesh`` installed
  (and ``--mesh-defect``); one per session, or one per test package whose
  conftest imports ``package_target`` (a machine holds one lab at a time);
- ``mesh``: the adapter of ``--mesh`` on that target, reset to no policy
  around each test;
- ``verdict``: the evidence and judgements of one conformance check.
``lab`` is the project's own tests' name for the target when they use the
local lab's extra calls.

Exit codes for CI: 0 every claimed check passed, 1 a check failed, 2 the
suite could not run (target or mesh unusable, bad options, interrupted).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from meshproof import registry
from meshproof.errors import MeshproofError, NotRoot
from meshproof.mesh.base import MeshAdapter
from meshproof.targets.base import Target

#: Seconds spent bringing targets up this session (the report splits bring-up from checks).
TIMINGS: dict[str, float] = {}
#: One adapter per target object (adapters keep state, e.g. the black box's resources).
_ADAPTERS: dict[int, MeshAdapter] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("meshproof")
    g.addoption("--target", default="local",
                help=f"where the topology runs: {', '.join(registry.TARGETS)}")
    g.addoption("--mesh", default="reference",
                help=f"mesh under test: {', '.join(registry.MESHES)}")
    g.addoption("--mesh-defect", default="", metavar="ID",
                help="bring the mesh up with this defect (negative control)")
    g.addoption("--supported-features", default="", metavar="A,B",
                help="check only these features (default: what the mesh claims)")
    g.addoption("--exempt-features", default="", metavar="A,B",
                help="skip checks needing these features")
    g.addoption("--catching", default="", metavar="ID",
                help="select only the checks that declare they catch defect ID")
    g.addoption("--conformance-report", default="", metavar="PATH",
                help="write the ConformanceReport YAML here")
    g.addoption("--list-checks", action="store_true", help="list the checks and exit")
    g.addoption("--seed", type=int, default=None, help="seed for request keys (recorded)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance(spec): a conformance check")
    try:
        entry = registry.mesh_entry(config.getoption("--mesh"))
        registry.target_entry(config.getoption("--target"))
        registry.mesh_entry(entry.name, config.getoption("--target"))
        registry.check_defect(entry, config.getoption("--mesh-defect"))
    except MeshproofError as exc:
        pytest.exit(str(exc), 2)
    from meshproof.conformance import plugin

    config.pluginmanager.register(plugin.ConformancePlugin(config), "meshproof-conformance")
    if config.getoption("--seed") is None:
        config.option.seed = random.SystemRandom().randrange(1, 2**31)


def start_target(config: pytest.Config, **options: Any) -> Iterator[Target]:
    """Bring the topology up for the options' target and mesh; always take it down."""
    t0 = time.monotonic()
    try:
        target = registry.start_target(config.getoption("--target"),
                                       options.pop("mesh", config.getoption("--mesh")),
                                       options.pop("defect", config.getoption("--mesh-defect")),
                                       **options)
    except MeshproofError as exc:
        if isinstance(exc, NotRoot):
            pytest.skip(str(exc))
        pytest.exit(f"the target could not be brought up: {exc}", 2)
    TIMINGS["bringup_s"] = TIMINGS.get("bringup_s", 0.0) + time.monotonic() - t0
    try:
        yield target
    finally:
        _ADAPTERS.pop(id(target), None)
        target.down()


@pytest.fixture(scope="package", name="target")
def package_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A package's own target: import it into the package's conftest.py as
    ``from meshproof.pytest_plugin import package_target  # noqa: F401``. pytest
    scopes a fixture to the package whose conftest holds it, so the lab is
    removed when that package ends and the next package can have another."""
    yield from start_target(request.config)


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """One target for the session (packages needing their own override it)."""
    yield from start_target(request.config)


@pytest.fixture
def lab(target: Target) -> Target:
    """The project's own tests' name for the target (the local lab's extra calls)."""
    return target


def adapter(config: pytest.Config, target: Target) -> MeshAdapter:
    """The session's adapter for ``target`` (built once: adapters keep state)."""
    if id(target) not in _ADAPTERS:
        entry = registry.mesh_entry(config.getoption("--mesh"))
        _ADAPTERS[id(target)] = registry.adapter_for(entry, target)
    return _ADAPTERS[id(target)]


@pytest.fixture
def mesh(request: pytest.FixtureRequest, target: Target) -> Iterator[MeshAdapter]:
    m = adapter(request.config, target)
    m.wait_programmed(m.reset())
    yield m
    m.wait_programmed(m.reset())


# Conformance fixtures live with the conformance plugin; exposing them here
# is what makes pytest find them (fixtures are read from plugin modules).
from meshproof.conformance.plugin import _meshproof_gate, verdict  # noqa: E402,F401
