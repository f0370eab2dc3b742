"""Offline fixtures: a FakeApiServer (tests/kube/fakeapi.py, not a real API server) and a
kubeconfig pointing at it."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof import paths
from tests.kube.fakeapi import FakeApiServer

#: what the ConfigMap mounts at /meshproof, from the tree (manifests.fixture_files)
MOUNTED = {"probe.py": str(paths.ROOT / "fixtures" / "probe" / "probe.py"),
           "workload.py": str(paths.ROOT / "fixtures" / "app" / "workload.py"),
           "loadgen.py": str(paths.ROOT / "loadtests" / "podgen.py")}


def local_exec(cmd: list[str]) -> list[str]:
    """Run a pod's command here: the mounted files from the tree instead of /meshproof."""
    return [sys.executable if c == "python3" else
            re.sub(r"^/meshproof/([a-z]+\.py)$", lambda m: MOUNTED[m.group(1)], c)
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


def dead_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig whose cluster nothing answers (port 1), context kind-nightly."""
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("apiVersion: v1\nkind: Config\ncurrent-context: kind-nightly\n"
                   "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                   "users: [{name: u, user: {token: t}}]\n"
                   "contexts: [{name: kind-nightly, context: {cluster: c, user: u}}]\n")
    return cfg


#: What a refusal may cost beyond starting the command: preflight's one GET /version
#: (3 s connect timeout, no retries: targets/kube/config.py, rest.py) plus a few API calls.
PREFLIGHT_ALLOWANCE_S = 8.0
