"""``meshproof conformance --target kube`` as CI runs it, in a fresh process: no reachable
cluster, or a cluster (FakeApiServer, a fake) lacking a permission, exits 2 within
a bounded CPU cost (and a wall bound against hangs) with a message naming the kubeconfig/context or the verb and resource, and
creates nothing."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from meshproof import paths
from tests.kube.conftest import dead_kubeconfig

MESHPROOF = str(Path(sys.executable).parent / "meshproof")


#: CPU seconds (user + system, the command's own rusage) the refusal may cost: 1.5 s
#: here, nearly all pytest's start-up with the plugin and the kube client. CPU, not
#: wall: on the shared 2-core machine the two runs took 16-32 s of wall together beside
#: two CPU burners and other labs, which says nothing about the command.
MAX_CPU_S = 10.0
#: Wall seconds against a hang (a hang burns no CPU): the preflight's own bounded waits
#: plus the start-up at a few percent of a core.
MAX_WALL_S = 55.0


def run(tmp_path, kubeconfig):
    """(the finished command, its CPU seconds, its wall seconds)."""
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    t0, r0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([MESHPROOF, "conformance", "--target", "kube", "--mesh", "istio",
                        "--reports", str(tmp_path / "reports")], env=env, capture_output=True,
                       text=True, timeout=60, cwd=str(paths.ROOT))
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return p, cpu, time.monotonic() - t0


def quick(cpu: float, wall: float) -> bool:
    return cpu < MAX_CPU_S and wall < MAX_WALL_S


def test_no_cluster_exits_2_naming_kubeconfig_and_context(tmp_path):
    cfg = dead_kubeconfig(tmp_path)
    p, cpu, wall = run(tmp_path, str(cfg))
    out = p.stdout + p.stderr
    assert p.returncode == 2, out[-2000:]
    assert quick(cpu, wall), (cpu, wall)  # pytest's own start-up included
    assert f"kubeconfig {cfg}, context kind-nightly" in out
    assert "the cluster is unreachable" in out


def test_missing_permission_exits_2_naming_verb_and_resource(tmp_path, fake):
    fake.add_istiod()
    fake.denied.add(("delete", "", "namespaces"))
    p, cpu, wall = run(tmp_path, os.environ["KUBECONFIG"])
    out = p.stdout + p.stderr
    assert p.returncode == 2, out[-2000:]
    assert quick(cpu, wall), (cpu, wall)
    assert "cannot delete namespaces (all namespaces)" in out
    assert [r for r in fake.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")
            and "selfsubjectaccessreviews" not in r[1]] == []
