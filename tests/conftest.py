"""Shared fixtures for meshproof's own tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from meshproof.target.local.client import LocalTarget, stop_lab

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the netns lab needs root")


def start_lab(**kw) -> Iterator[LocalTarget]:
    """A lab for one test package (one lab per machine: packages take turns)."""
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root")
    if LocalTarget.running():
        pytest.fail("a lab is already running; run 'meshproof down' before the tests")
    target = LocalTarget.start(**kw)
    try:
        yield target
    finally:
        stop_lab()


def statuses(answer: dict) -> list[int]:
    return [r["status"] for r in answer["results"]]


def by_pod(answer: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in answer["results"]:
        k = r["headers"].get("x-pod", f"error:{r['error']}")
        out[k] = out.get(k, 0) + 1
    return out
