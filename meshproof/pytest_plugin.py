"""The meshproof pytest plugin: target and mesh fixtures, conformance options.

Fixtures: ``lab`` (the fixture topology on the local target with the mesh of
``--mesh`` and the defect of ``--mesh-defect``; one per test package, as a
machine holds one lab at a time), ``mesh`` (the adapter, reset to no policy
around each test) and ``verdict`` (evidence and judgements of one check).

Exit codes for CI: 0 every claimed check passed, 1 a check failed, 2 the
suite could not run (target or mesh unusable, bad options).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator

import pytest

from meshproof.errors import MeshproofError
from meshproof.mesh.reference import ReferenceMesh
from meshproof.targets.local.client import LocalTarget, stop_lab

MESHES = ("reference", "none")
#: Seconds spent bringing labs up this session (the report splits bring-up from checks).
TIMINGS: dict[str, float] = {}
#: How long a test package waits for another lab on this machine to finish.
LAB_WAIT_S = float(os.environ.get("MESHPROOF_LAB_WAIT_S", "900"))
TARGETS = ("local",)


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("meshproof")
    g.addoption("--target", default="local", help="where the topology runs: local")
    g.addoption("--mesh", default="reference", help="mesh under test: reference")
    g.addoption("--mesh-defect", default="", metavar="ID",
                help="bring the reference mesh up with this defect (negative control)")
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
    mesh, target = config.getoption("--mesh"), config.getoption("--target")
    if mesh not in MESHES:
        pytest.exit(f"unknown mesh {mesh!r}: meshes are {', '.join(MESHES)}", 2)
    if target not in TARGETS:
        pytest.exit(f"unknown or unavailable target {target!r}: targets are "
                    f"{', '.join(TARGETS)} (kube is not available yet)", 2)
    defect = config.getoption("--mesh-defect")
    if defect:
        from meshproof.mesh.defects import require

        try:
            require(defect)
        except MeshproofError as exc:
            pytest.exit(str(exc), 2)
    from meshproof.conformance import plugin

    config.pluginmanager.register(plugin.ConformancePlugin(config), "meshproof-conformance")
    if config.getoption("--seed") is None:
        config.option.seed = random.SystemRandom().randrange(1, 2**31)


def start_lab(**kw: object) -> Iterator[LocalTarget]:
    """Start a lab for one package and always remove it (one lab per machine)."""
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root")
    from meshproof.targets.local import lock

    try:
        # One lab per machine: queue behind a lab that is running (bounded).
        lock.wait_free(LAB_WAIT_S, say=lambda m: print(f"\nmeshproof: {m}", flush=True))
        t0 = time.monotonic()
        target = LocalTarget.start(**kw)  # type: ignore[arg-type]
    except MeshproofError as exc:
        pytest.exit(f"the target could not be brought up: {exc}", 2)
    TIMINGS["bringup_s"] = TIMINGS.get("bringup_s", 0.0) + time.monotonic() - t0
    try:
        yield target
    finally:
        stop_lab()


def lab_from_options(request: pytest.FixtureRequest) -> Iterator[LocalTarget]:
    """The lab ``--mesh`` and ``--mesh-defect`` ask for."""
    cfg = request.config
    yield from start_lab(mesh=cfg.getoption("--mesh"), defect=cfg.getoption("--mesh-defect"))


@pytest.fixture(scope="package", name="lab")
def package_lab(request: pytest.FixtureRequest) -> Iterator[LocalTarget]:
    """A package's own lab: import it into the package's conftest.py as
    ``from meshproof.pytest_plugin import package_lab  # noqa: F401``. pytest
    scopes a fixture to the package whose conftest holds it, so the lab is
    removed when that package ends and the next package can have another."""
    yield from lab_from_options(request)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[LocalTarget]:
    """One lab for the session. A package that must have its own lab (a
    machine holds one at a time, so packages needing different labs take
    turns) overrides this with a package-scoped ``lab`` in its conftest.py:
    pytest scopes a fixture to the package where it is defined."""
    yield from lab_from_options(request)


@pytest.fixture
def mesh(lab: LocalTarget) -> Iterator[ReferenceMesh]:
    m = ReferenceMesh(lab.pods())
    m.wait_programmed(m.reset())
    yield m
    m.wait_programmed(m.reset())


# Conformance fixtures live with the conformance plugin; exposing them here
# is what makes pytest find them (fixtures are read from plugin modules).
from meshproof.conformance.plugin import _unclaimed_is_failure, verdict  # noqa: E402,F401
