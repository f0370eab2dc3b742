from collections.abc import Iterator

import pytest

from meshproof.mesh.reference import ReferenceMesh
from meshproof.target.local.client import LocalTarget
from tests.conftest import start_lab


@pytest.fixture(scope="package")
def lab() -> Iterator[LocalTarget]:
    """The fixture topology with the reference mesh."""
    yield from start_lab(mesh="reference")


@pytest.fixture
def mesh(lab: LocalTarget) -> Iterator[ReferenceMesh]:
    """The adapter, reset to no policy after each test (PERMISSIVE, no splits)."""
    m = ReferenceMesh(lab.pods())
    m.wait_programmed(m.reset())
    yield m
    m.wait_programmed(m.reset())
