"""Declaring a conformance check: its name, what it needs, what it catches.

The Gateway API conformance shape: each check says up front its short name,
a description, the features it needs (a mesh that does not claim them skips
it, with the reason) and the intents it applies; meshproof adds the defects
it catches, so the project's own tests can prove it fails on each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import allure
import pytest

from meshproof.conformance.spec import FEATURES, CheckSpec
from meshproof.mesh.base import CAPABILITIES as MESH_CAPABILITIES
from meshproof.mesh.defects import DEFECTS
from meshproof.targets.base import CAPABILITIES as TARGET_CAPABILITIES

F = TypeVar("F", bound=Callable[..., Any])

REGISTRY: dict[str, CheckSpec] = {}


def check(name: str, description: str, *, features: list[str],
          catches: tuple[str, ...] | list[str] = (), intents: tuple[str, ...] | list[str] = (),
          target_needs: tuple[str, ...] | list[str] = (),
          mesh_needs: tuple[str, ...] | list[str] = ()) -> Callable[[F], F]:
    """Mark a test function as conformance check ``name``. Every check probes, so
    ``probe`` is always among the target capabilities it needs."""
    unknown = [f for f in features if f not in FEATURES]
    bad = [d for d in catches if d not in DEFECTS]
    needs = ("probe", *(c for c in target_needs if c != "probe"))
    caps = [c for c in needs if c not in TARGET_CAPABILITIES]
    caps += [c for c in mesh_needs if c not in MESH_CAPABILITIES]
    if unknown or bad or caps:
        raise ValueError(f"check {name}: unknown features {unknown} / defects {bad} / "
                         f"capabilities {caps}")
    if name in REGISTRY:
        raise ValueError(f"check {name} is declared twice")
    spec = CheckSpec(name, description, tuple(features), tuple(catches), tuple(intents),
                     needs, tuple(mesh_needs))
    REGISTRY[name] = spec

    def mark(fn: F) -> F:
        # Allure labels as decorators: the report names each entry by the check.
        for deco in (allure.title(name), allure.story(name), allure.feature(features[0]),
                     allure.description(description), allure.tag(*features)):
            fn = deco(fn)
        return pytest.mark.conformance(spec)(fn)  # type: ignore[no-any-return]

    return mark


def spec_of(item: pytest.Item) -> CheckSpec | None:
    m = item.get_closest_marker("conformance")
    return m.args[0] if m else None
