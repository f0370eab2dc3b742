"""Offline fixtures: the kube tests' FakeApiServer (a fake, not a real API server) and a
kubeconfig pointing at it."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof import paths
from tests.kube.fakeapi import FakeApiServer

PROBE = str(paths.ROOT / "fixtures" / "probe" / "probe.py")


def local_exec(cmd: list[str]) -> list[str]:
    """Run a pod's command here: the probe from fixtures/ instead of /meshproof."""
    return [sys.executable if c == "python3" else re.sub(r"^/meshproof/probe\.py$", PROBE, c)
            for c in cmd]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApiServer]:
    with FakeApiServer() as srv:
        srv.exec_rewrite = local_exec
        cfg = srv.kubeconfig(str(tmp_path / "kubeconfig"))
        monkeypatch.setenv("KUBECONFIG", cfg)
        monkeypatch.delenv("MESHPROOF_KUBECONFIG", raising=False)
        monkeypatch.delenv("MESHPROOF_KUBE_CONTEXT", raising=False)
        monkeypatch.delenv("MESHPROOF_ALLOW_COMPONENT_OUTAGE", raising=False)
        yield srv
