"""Shared fixtures for meshproof's own tests."""

from __future__ import annotations

import os

import pytest

from meshproof.results import by_pod, statuses  # noqa: F401

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the netns lab needs root")
