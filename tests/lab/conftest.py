from collections.abc import Iterator

import pytest

from meshproof.targets.local.client import LocalTarget
from tests.conftest import start_lab


@pytest.fixture(scope="package")
def lab() -> Iterator[LocalTarget]:
    """The fixture topology without a mesh."""
    yield from start_lab(mesh="none")
