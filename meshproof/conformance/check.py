"""Declaring a conformance check: its name, what it needs, what it catches.

The Gateway API conformance shape: each check says up front its short name,
a description, the features it needs (a mesh that does not claim them skips
it, with the reason) and the intents it applies; meshproof adds the defects
it catches, so the project's own tests can prove it fails on each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import allure
import pytest

from meshproof.mesh.defects import DEFECTS

F = TypeVar("F", bound=Callable[..., Any])

#: Every feature a check may need; a mesh's claims() name a subset.
FEATURES = {
    "traffic-split": "SMI TrafficSplit by weight",
    "traffic-split-match": "TrafficSplit limited to requests matching an HTTPRouteGroup",
    "gamma-httproute": "Gateway API HTTPRoute with a Service parent (GAMMA)",
    "mtls-strict": "STRICT mTLS refuses plaintext",
    "mtls-permissive": "PERMISSIVE mTLS accepts plaintext and mTLS",
    "mtls-workload-override": "a workload's mTLS mode beats its namespace's",
    "xfcc-spiffe": "the server sees the caller's SPIFFE ID",
    "server-identity": "clients verify the server's SPIFFE ID",
    "cert-validation": "peers' certificates are validated (CA, expiry)",
    "access-control": "SMI TrafficTarget access control, deny by default",
    "access-control-routes": "access rules limited to paths and methods",
    "retries": "retry policy (attempt counts, retriable statuses)",
    "timeouts": "request timeouts",
    "fault-injection": "abort and delay faults at a percentage",
}


@dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    features: tuple[str, ...]
    catches: tuple[str, ...]
    intents: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


REGISTRY: dict[str, CheckSpec] = {}


def check(name: str, description: str, *, features: list[str], catches: list[str] = (),  # type: ignore[assignment]
          intents: list[str] = ()) -> Callable[[F], F]:  # type: ignore[assignment]
    """Mark a test function as conformance check ``name``."""
    unknown = [f for f in features if f not in FEATURES]
    bad = [d for d in catches if d not in DEFECTS]
    if unknown or bad:
        raise ValueError(f"check {name}: unknown features {unknown} / defects {bad}")
    if name in REGISTRY:
        raise ValueError(f"check {name} is declared twice")
    spec = CheckSpec(name, description, tuple(features), tuple(catches), tuple(intents))
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
