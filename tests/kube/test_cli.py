"""``meshproof conformance --target kube`` as CI runs it, in a fresh process: no reachable
cluster, or a cluster (FakeApiServer, a fake) lacking a permission, exits 2 within
seconds with a message naming the kubeconfig/context or the verb and resource, and
creates nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from meshproof import paths
from tests.kube.conftest import dead_kubeconfig

MESHPROOF = str(Path(sys.executable).parent / "meshproof")


def run(tmp_path, kubeconfig):
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    t0 = time.monotonic()
    p = subprocess.run([MESHPROOF, "conformance", "--target", "kube", "--mesh", "istio",
                        "--reports", str(tmp_path / "reports")], env=env, capture_output=True,
                       text=True, timeout=60, cwd=str(paths.ROOT))
    return p, time.monotonic() - t0


def test_no_cluster_exits_2_naming_kubeconfig_and_context(tmp_path):
    cfg = dead_kubeconfig(tmp_path)
    p, took = run(tmp_path, str(cfg))
    out = p.stdout + p.stderr
    assert p.returncode == 2, out[-2000:]
    assert took < 20  # pytest's own start-up included
    assert f"kubeconfig {cfg}, context kind-nightly" in out
    assert "the cluster is unreachable" in out


def test_missing_permission_exits_2_naming_verb_and_resource(tmp_path, fake):
    fake.add_istiod()
    fake.denied.add(("delete", "", "namespaces"))
    p, took = run(tmp_path, os.environ["KUBECONFIG"])
    out = p.stdout + p.stderr
    assert p.returncode == 2, out[-2000:]
    assert took < 20
    assert "cannot delete namespaces (all namespaces)" in out
    assert [r for r in fake.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")
            and "selfsubjectaccessreviews" not in r[1]] == []
