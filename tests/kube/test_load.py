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
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshproof import paths
from meshproof.errors import TargetError
from meshproof.load import gate, group, report, runner
from meshproof.load.session import LoadSession
from meshproof.load.settings import LoadSettings, ScenarioSettings
from meshproof.targets.kube.config import MANAGED_LABEL, OWNER_ANNOTATION, RUN_LABEL

#: 1 round x 0.5 s per path at 200 rps (+ the runner's 1 s warm-up run per path); no floor
SETTINGS = LoadSettings(scenarios=(ScenarioSettings("single-hop", 200.0, 0.5, 1),),
                        warmup_s=0.1, floor_s=0.0, connections=4)


class Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the sample app
    disable_nagle_algorithm = True  # else 40 ms per answer (Nagle + delayed ACK)

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


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
def service(fake, monkeypatch):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    fake.exec_stdin = cluster_dns(url)
    monkeypatch.setattr(group, "START_AHEAD_S", 0.3)
    yield url
    srv.shutdown()


def loadgen_execs(fake):
    return [c for c in fake.execs if "/meshproof/loadgen.py" in c]


def namespaces(fake):
    fake._reconcile()
    return sorted(n["metadata"]["name"] for n in fake.kinds("v1/namespaces"))


def test_load_twins_on_kube_merge_generators_report_and_gate(fake, service, tmp_path):
    fake.add_istiod()
    lines = []
    with LoadSession(target="kube", mesh="istio", clients=2, log=lines.append,
                     ready_timeout_s=5) as s:
        pods = {p.key for p in s.target.pods() if p.workload == "client"}
        assert len(pods) == 4 and {p.split("/")[0] for p in pods} == {"load-plain",
                                                                       "load-mesh"}
        assert {p.key: p.meshed for p in s.target.pods()}  # the twins: meshed + not
        assert [p.meshed for p in s.target.workload_pods("load-mesh", "client")] == [True] * 2
        assert not any(p.meshed for p in s.target.workload_pods("load-plain", "client"))
        doc = s.measure(SETTINGS, "tests/kube load")
        run_id = s.target.run_id
    # every generator ran by exec in its own client pod, one exec per run
    execs = loadgen_execs(fake)
    per_run = (2 + 2 * SETTINGS.scenarios[0].rounds) * 2  # (2 warm-ups + 2 per round) x pods
    assert len([c for c in execs if "--once" in c]) == per_run, execs
    assert doc["target"] == "kube" and doc["mesh"]["name"] == "istio"
    assert doc["mesh"]["version"] == "1.24.2" and doc["mesh"]["tls_handshakes"] == {}
    assert doc["generator"]["per_path"] == 2 and len(doc["generator"]["pods"]) == 4
    assert doc["generator"]["locust"] == "" and "podgen.py" in doc["generator"]["client"]
    sc = doc["scenarios"]["single-hop"]
    assert set(sc["generators"]["mesh"]) == {p for p in pods if p.startswith("load-mesh/")}
    for r in sc["rounds"]:
        for path in ("plain", "mesh"):
            ph = r["phases"][path]
            # both generators' requests, merged: rate x window, none lost
            assert ph["ok"] == pytest.approx(200 * 0.5, abs=2), ph
            assert ph["latency_us"]["count"] == ph["ok"] and not ph["errors"]
    assert sc["proxy"]["sidecars"] == {}  # not measured on kube (said in capabilities)
    path = report.write(doc, tmp_path, "kube")
    code, verdict = gate.judge(report.load(path), doc)
    assert code in (0, 1) and any("single-hop p50" in ln for ln in verdict)
    # nothing of the run is left
    assert namespaces(fake) == ["istio-system"]
    assert not [o for o in fake.objects.values()
                if (o.get("metadata", {}).get("labels") or {}).get(RUN_LABEL) == run_id]
    assert any("load twins up" in ln for ln in lines)


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

def _make(tmp_path, kubeconfig, *extra):
    env = {**os.environ, "KUBECONFIG": kubeconfig, "MESHPROOF_INSTANCE":
           os.environ.get("MESHPROOF_INSTANCE", "")}
    t0 = time.monotonic()
    p = subprocess.run(["make", "--no-print-directory", "load", "TARGET=kube", "MESH=istio",
                        f"REPORTS={tmp_path}/reports", *extra],
                       env=env, capture_output=True, text=True, timeout=120,
                       cwd=str(paths.ROOT))
    return p, time.monotonic() - t0


def test_make_load_kube_without_a_cluster_exits_2_naming_kubeconfig(tmp_path):
    cfg = tmp_path / "kubeconfig"
    cfg.write_text("apiVersion: v1\nkind: Config\ncurrent-context: kind-nightly\n"
                   "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                   "users: [{name: u, user: {token: t}}]\n"
                   "contexts: [{name: kind-nightly, context: {cluster: c, user: u}}]\n")
    p, took = _make(tmp_path, str(cfg))
    out = p.stdout + p.stderr
    assert p.returncode == 2, out[-2000:]
    assert took < 30, took  # make's setup check included
    assert f"kubeconfig {cfg}, context kind-nightly" in out and "unreachable" in out
    assert "Error 2" in out  # python -m meshproof.load itself exited 2, not 1
    # the entry point alone: exit 2, within seconds
    t0 = time.monotonic()
    q = subprocess.run([sys.executable, "-m", "meshproof.load", "--target", "kube",
                        "--mesh", "istio", "--out", str(tmp_path / "r")],
                       env={**os.environ, "KUBECONFIG": str(cfg)}, capture_output=True,
                       text=True, timeout=60, cwd=str(paths.ROOT))
    assert q.returncode == 2 and "unreachable" in q.stderr
    assert time.monotonic() - t0 < 15


def test_make_load_kube_in_a_fresh_process_against_the_fake(fake, service, tmp_path):
    """The whole command, fresh process, against the fake: the twins come up, the
    generators run by exec, the report is written, everything is removed."""
    fake.add_istiod()
    p, took = _make(tmp_path, os.environ["KUBECONFIG"],
                    "LOAD_ARGS=--scenario single-hop --rate 100 --duration 0.5 --rounds 1 "
                    "--warmup 0.1 --floor 0.2 --connections 2")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    doc = json.loads((tmp_path / "reports" / "load" / "latest.json").read_text())
    assert doc["target"] == "kube" and doc["mesh"]["name"] == "istio"
    phases = doc["scenarios"]["single-hop"]["rounds"][0]["phases"]
    assert all(phases[p]["ok"] == pytest.approx(100 * 0.5, abs=2) for p in phases if p != "floor"), phases
    assert "added (median)" in out and "report:" in out
    # 2 warm-up runs, plain + mesh + floor: one exec each, and one --info
    assert len(loadgen_execs(fake)) == 6
    assert namespaces(fake) == ["istio-system"]
