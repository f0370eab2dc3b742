"""Load on a cluster, against FakeApiServer (tests/kube/fakeapi.py: a fake, NOT Kubernetes).

The control flow of ``make load TARGET=kube MESH=istio``: the load twins come up
through the kube target (preflight, create, bounded wait), one generator per
client pod runs for real (the fake's exec runs ``loadtests/podgen.py``, the
file the ConfigMap mounts, against a local server standing in for the
service), several generators' histograms are merged, the report and gate are
the local lab's, and every error path cleans up by run label.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from meshproof import paths
from tests.kube.conftest import PREFLIGHT_ALLOWANCE_S, dead_kubeconfig
from tests.load.helpers import ok_server
from meshproof.errors import TargetError
from meshproof.load import gate, report, runner
from meshproof.load.session import LoadSession
from meshproof.load.settings import LoadSettings, ScenarioSettings
from meshproof.targets.kube.config import MANAGED_LABEL, OWNER_ANNOTATION, RUN_LABEL

#: 1 round x 0.5 s per path at 200 rps (+ the runner's 1 s warm-up run per path); no floor
SETTINGS = LoadSettings(scenarios=(ScenarioSettings("single-hop", 200.0, 0.5, 1),),
                        warmup_s=0.1, floor_s=0.0, connections=4)


def cluster_dns(url: str):
    """The fake's stand-in for cluster DNS and the pod's own app: the service name and
    the pod's loopback app in an order become a local server ('reviews' does not
    resolve here); the order is otherwise the harness's own."""
    def rewrite(cmd, stdin):
        for name in (runner.URLS["single-hop"][0], runner.FLOOR["host"]):
            stdin = stdin.replace(json.dumps(name).encode(), json.dumps(url).encode())
        return stdin
    return rewrite


@pytest.fixture
def service(fake):
    with ok_server() as url:
        fake.exec_stdin = cluster_dns(url)
        yield url


def loadgen_execs(fake):
    return [c for c in fake.execs if "/meshproof/loadgen.py" in c]


def namespaces(fake):
    fake._reconcile()
    return sorted(n["metadata"]["name"] for n in fake.kinds("v1/namespaces"))


def test_generator_pod_never_ready_is_named_with_its_events(fake):
    fake.add_istiod()
    fake.stuck["client"] = "ImagePullBackOff"
    t0 = time.monotonic()
    with pytest.raises(TargetError) as e:
        LoadSession(target="kube", mesh="istio", ready_timeout_s=1.5).__enter__()
    assert time.monotonic() - t0 < 15
    msg = str(e.value)
    assert "load-mesh/client: 0/1 ready" in msg and "load-plain/client: 0/1 ready" in msg
    assert "ImagePullBackOff" in msg and "Failed to pull image" in msg  # its events
    assert namespaces(fake) == ["istio-system"]


def test_interrupted_run_is_cleaned_up_by_run_label(fake, service):
    fake.add_istiod()

    def log(line):
        if line.startswith("single-hop:"):  # the twins are up, the run starts
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with LoadSession(target="kube", mesh="istio", log=log, ready_timeout_s=5) as s:
            s.measure(SETTINGS, "interrupted")
    assert namespaces(fake) == ["istio-system"]


def test_a_killed_runs_twins_are_removed_by_the_next(fake, service):
    fake.add_istiod()
    fake.put("v1/namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "load-mesh", "labels": {RUN_LABEL: "rdead", MANAGED_LABEL: "true"},
        "annotations": {OWNER_ANNOTATION: "elsewhere:1"}}})
    with LoadSession(target="kube", mesh="istio", ready_timeout_s=5) as s:
        ns = fake.objects[("v1/namespaces", "", "load-mesh")]["metadata"]["labels"]
        assert ns[RUN_LABEL] == s.target.run_id
    assert namespaces(fake) == ["istio-system"]


# ---------------------------------------------------------------- what the user types

def _start_make(tmp_path, kubeconfig, *extra):
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "MESHPROOF_INSTANCE":
           os.environ.get("MESHPROOF_INSTANCE", "")}
    return subprocess.Popen(["make", "--no-print-directory", "load", "TARGET=kube",
                             "MESH=istio", f"REPORTS={tmp_path}/reports", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=str(paths.ROOT))


def _finish(p, t0):
    out, _ = p.communicate(timeout=180)
    return p.returncode, out, time.monotonic() - t0


def _make(tmp_path, kubeconfig, *extra):
    t0 = time.monotonic()
    rc, out, took = _finish(_start_make(tmp_path, kubeconfig, *extra), t0)
    return subprocess.CompletedProcess([], rc, out, ""), took


def test_make_load_kube_without_a_cluster_exits_2_naming_kubeconfig(tmp_path):
    """Exit 2 naming kubeconfig and context, and within seconds: judged against the same
    command started at the same moment with a kubeconfig that does not exist (the same
    start-up, imports and make, under the same load from other labs, but no network), so
    what is measured is what the unreachable cluster costs: preflight's one GET
    /version with a 3 s connect timeout and no retries (PREFLIGHT_ALLOWANCE_S)."""
    cfg = dead_kubeconfig(tmp_path)
    (tmp_path / "b").mkdir()
    t0 = time.monotonic()
    dead, base = _start_make(tmp_path, cfg), _start_make(tmp_path / "b", tmp_path / "none")
    rc, out, took = _finish(dead, t0)
    base_rc, base_out, base_took = _finish(base, t0)
    assert base_rc == 2 and "no kubeconfig at" in base_out, base_out[-1000:]
    assert rc == 2, out[-2000:]
    assert took - base_took < PREFLIGHT_ALLOWANCE_S, (took, base_took)
    assert f"kubeconfig {cfg}, context kind-nightly" in out and "unreachable" in out
    assert "Error 2" in out  # python -m meshproof.load itself exited 2 (make says so)


def test_make_load_kube_mesh_istio_in_a_fresh_process(fake, service, tmp_path):
    """``make load TARGET=kube MESH=istio`` in a fresh process against the fake: the twins
    come up through the kube target, two client pods per twin run one generator each by
    exec (the real podgen.py, as mounted), their histograms are merged per path, the
    report and plots are written as on the local lab, and the run's objects are gone."""
    fake.add_istiod()
    p, took = _make(tmp_path, os.environ["KUBECONFIG"],
                    "LOAD_ARGS=--clients 2 --scenario single-hop --rate 200 --duration 0.5 "
                    "--rounds 1 --warmup 0.1 --floor 0.5 --connections 4")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    doc = json.loads((tmp_path / "reports" / "load" / "latest.json").read_text())
    assert doc["target"] == "kube" and doc["mesh"]["name"] == "istio"
    assert doc["mesh"]["version"] == "1.24.2"
    assert doc["mesh"]["tls_handshakes"] == {}  # Istio's counters are not read (docs/kube.md)
    gen = doc["generator"]
    assert gen["per_path"] == 2 and gen["locust"] == "" and "podgen.py" in gen["client"]
    sc = doc["scenarios"]["single-hop"]
    pods = {twin: set(sc["generators"][path]) for twin, path in (("load-plain", "plain"),
                                                                 ("load-mesh", "mesh"))}
    for twin, names in pods.items():
        assert len(names) == 2 and all(n.startswith(f"{twin}/client-") for n in names)
    runs = [w for w, c in zip(fake.exec_pods, fake.execs) if c[-1] == "--once"]
    # the generators of a path were asked what they are, together, to time the start
    assert len([c for c in fake.execs if c[-1] == "--info"]) >= 4
    assert 0.2 <= gen["start_ahead_s"] <= 10
    # (warm-up + round) per path, floor from the plain twin: one exec per pod each
    assert sorted(runs) == sorted([*pods["load-plain"]] * 3 + [*pods["load-mesh"]] * 2)
    phases = sc["rounds"][0]["phases"]
    for name, ph in phases.items():
        want = 200 * (0.5 if name != "floor" else 0.5)
        assert ph["ok"] == pytest.approx(want, abs=2) and not ph["errors"], (name, ph)
        assert ph["latency_us"]["count"] == ph["ok"]  # both generators' requests, merged
    assert sc["proxy"]["sidecars"] == {}  # not measured on kube (its capabilities say why)
    assert "added (median)" in out and "report:" in out
    assert len(list((tmp_path / "reports" / "load").glob("*.png"))) == 2
    assert namespaces(fake) == ["istio-system"]
    # the gate reads it like a local report
    code, verdict = gate.judge(report.load(tmp_path / "reports" / "load" / "latest.json"), doc)
    assert code in (0, 1) and any("single-hop p50" in ln for ln in verdict)
