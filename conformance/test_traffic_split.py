"""Conformance: SMI TrafficSplit.

Each check runs on real traffic from client pods, only after the mesh says
the intent is programmed; a deny is always judged beside an allowed request
in the same window, and a wire check beside its plaintext positive control.
"""

from __future__ import annotations

import allure
import pytest

from meshproof.intent import TrafficSplit

pytestmark = [pytest.mark.lab, pytest.mark.mesh, allure.feature("TrafficSplit")]


def reviews_versions(lab, count: int) -> list[str]:
    ans = lab.probe("bookinfo/client-0", {"url": "http://reviews/reviews/0", "count": count})
    return [r["headers"].get("x-version", f"error:{r['error']}") for r in ans["results"]]


def test_split_flip_takes_effect_when_programmed(lab, mesh):
    for _ in range(3):
        for version in ("v1", "v2"):
            other = "v2" if version == "v1" else "v1"
            split = TrafficSplit("bookinfo/reviews", ((f"reviews-{version}", 100),
                                                      (f"reviews-{other}", 0)))
            mesh.wait_programmed(mesh.apply(split))
            # The very first request after wait_programmed already follows the split.
            assert reviews_versions(lab, 1) == [version]
            assert set(reviews_versions(lab, 30)) == {version}
