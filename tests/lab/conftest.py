"""The lab tests get their own lab, without a mesh (one lab per machine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshproof.pytest_plugin import start_target
from meshproof.targets.base import Target


@pytest.fixture(scope="package")
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The fixture topology without a mesh."""
    yield from start_target(request.config, mesh="none", defect="")
