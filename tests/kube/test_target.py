"""The kube target's control flow against FakeApiServer (a fake, not Kubernetes):
preflight and every error path, create + bounded wait, exec probes, faults, cleanup
after a kill."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meshproof import registry
from meshproof.errors import ConfigError, MeshproofError, TargetError
from meshproof.targets.kube import target as kt
from meshproof.targets.kube.config import MANAGED_LABEL, OWNER_ANNOTATION, RUN_LABEL
from meshproof.targets.model import ProbeOrder

NONE = registry.mesh_entry("none")
ISTIO = registry.mesh_entry("istio", "kube")


def creates(fake):
    return [p for m, p in fake.requests if m == "POST" and "selfsubjectaccessreviews" not in p]


def start(fake, mesh=NONE, **kw):
    kw.setdefault("ready_timeout_s", 5)
    return kt.start_target(mesh, "", **kw)


# ---------------------------------------------------------------- preflight


def test_unreachable_cluster_exits_2_within_seconds_naming_kubeconfig(tmp_path, monkeypatch,
                                                                        fake):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "dead"
    cfg.write_text(open(os.environ["KUBECONFIG"]).read().replace(fake.url,
                                                                 f"http://127.0.0.1:{port}"))
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    t0 = time.monotonic()
    with pytest.raises(TargetError) as e:
        start(fake)
    assert time.monotonic() - t0 < 5
    assert e.value.exit_code == 2
    assert str(cfg) in str(e.value) and "context fake (current-context)" in str(e.value)
    assert fake.requests == []


def test_missing_kubeconfig(tmp_path, monkeypatch, fake):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(TargetError, match="no kubeconfig at .*nope"):
        start(fake)


def test_unknown_context_is_named(monkeypatch, fake):
    monkeypatch.setenv("MESHPROOF_KUBE_CONTEXT", "prod-typo")
    with pytest.raises(ConfigError, match="context prod-typo"):
        start(fake)
    assert fake.requests == []


def test_named_context_is_used(monkeypatch, fake, tmp_path):
    fake.kubeconfig(os.environ["KUBECONFIG"], context="other")
    monkeypatch.setenv("MESHPROOF_KUBE_CONTEXT", "other")
    t = start(fake)
    assert "context other" in t.info()["cluster"]
    t.down()


def test_missing_permission_names_verb_and_resource(fake):
    fake.denied.add(("create", "", "pods/exec"))
    fake.denied.add(("patch", "apps", "deployments/scale"))
    with pytest.raises(TargetError) as e:
        start(fake)
    msg = str(e.value)
    assert "cannot create pods/exec" in msg and "cannot patch deployments/scale.apps" in msg
    assert creates(fake) == []


def test_istio_permissions_are_checked(fake):
    fake.add_istiod()
    fake.denied.add(("create", "networking.istio.io", "virtualservices"))
    with pytest.raises(TargetError, match="cannot create virtualservices.networking.istio.io"):
        start(fake, ISTIO)
    assert creates(fake) == []


@pytest.mark.parametrize("ready", [None, False])
def test_control_plane_missing_or_not_ready(fake, ready):
    if ready is not None:
        fake.add_istiod(ready=ready)
    with pytest.raises(TargetError, match="istio's control plane .* is not (installed|ready)"):
        start(fake, ISTIO)
    assert creates(fake) == []


def test_old_cluster_refused(fake, monkeypatch):
    from meshproof.targets.kube import rest

    monkeypatch.setattr(rest.Rest, "version", lambda self: {"major": "1", "minor": "22"})
    with pytest.raises(TargetError, match="needs 1.26"):
        start(fake)


def test_defect_refused_before_anything(fake):
    with pytest.raises(ConfigError, match="cannot be injected on the kube target"):
        kt.start_target(NONE, "weights-ignored")
    assert fake.requests == []


def test_reference_mesh_refused_on_kube():
    with pytest.raises(ConfigError, match="cannot be installed on target 'kube'"):
        registry.start_target("kube", "reference")


# ---------------------------------------------------------------- bring-up, probe, faults


class Echo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("x-version", "v9")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def echo():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_bring_up_probe_and_down(fake, echo):
    t = registry.start_target("kube", "none", ready_timeout_s=5)
    pods = t.pods()
    assert len(pods) == 14 and all(p.ready for p in pods)
    assert not any(p.meshed for p in pods)  # --mesh none: nothing injected
    assert t.pod("team-a", "client").service_account == "client"
    ns = fake.objects[("v1/namespaces", "", "bookinfo")]["metadata"]
    assert ns["labels"][RUN_LABEL] == t.run_id and OWNER_ANNOTATION in ns["annotations"]
    src = t.pod("bookinfo", "client")
    n_exec = len(fake.execs)
    res = t.probe(src, ProbeOrder(f"{echo}/echo", count=7, concurrency=2))
    assert len(fake.execs) == n_exec + 1  # one exec per batch
    assert fake.execs[-1] == ["python3", "/meshproof/probe.py", "--once"]
    assert [r.status for r in res] == [200] * 7 and res[0].version == "v9"
    assert res[0].json == {"path": "/echo"}
    refused = t.probe(src, ProbeOrder("http://127.0.0.1:1/", count=1))
    assert refused[0].outcome == "refused"
    assert t.clock_tick_s() > 0
    assert {s.name for s in t.services()} >= {"reviews-v1", "sentinel"}
    assert t.put_file(src, "ca.pem", "PEM\n") == "/tmp/meshproof/ca.pem"
    removed = t.down()
    assert sorted(removed["namespaces"]) == ["bookinfo", "outside", "team-a", "team-b",
                                             "team-c"]
    assert not fake.kinds("v1/namespaces")


def test_capabilities_declared_honestly(fake):
    fake.denied.add(("create", "networking.k8s.io", "networkpolicies"))
    t = start(fake)
    caps = t.capabilities()
    assert {"probe", "scale", "kill-pod", "put-file", "clock"} <= caps
    assert not caps & {"block", "capture", "components", "probe-in-sidecar"}
    assert "networkpolicies" in t.missing_reason("block")
    assert "tcpdump" in t.missing_reason("capture")
    with pytest.raises(TargetError):
        t.capture_start(t.pod("team-a", "client"), t.pod("team-b", "echo"))
    t.down()


def test_scale_kill_revive_keep_ordinals(fake):
    t = start(fake)
    assert [p.ordinal for p in t.scale("bookinfo", "reviews-v1", 3)] == [0, 1, 2]
    victim = t.pod("bookinfo", "reviews-v1", 1)
    t.kill_pod(victim)
    t.revive_pod(victim)
    after = t.workload_pods("bookinfo", "reviews-v1")
    assert [p.ordinal for p in after] == [0, 1, 2]
    assert t.pod("bookinfo", "reviews-v1", 1).name != victim.name
    t.down()


def test_block_is_two_networkpolicies(fake):
    import kubernetes_validate

    t = start(fake)
    a, b = t.pod("team-a", "client"), t.pod("team-b", "echo")
    t.block(a, b)
    pols = fake.kinds("networking.k8s.io/v1/networkpolicies")
    assert len(pols) == 2
    for p in pols:
        kubernetes_validate.validate(p, kubernetes_validate.latest_version(), strict=True)
    t.unblock(a, b)
    assert fake.kinds("networking.k8s.io/v1/networkpolicies") == []
    t.down()


def test_component_outage_needs_the_flag_and_heals_after_a_kill(fake, monkeypatch):
    fake.add_istiod()
    t = start(fake, ISTIO)
    assert "components" not in t.capabilities()
    # Without the opt-in, asking anyway (a chaos file run by hand) is refused, untouched.
    with pytest.raises(TargetError, match="MESHPROOF_ALLOW_COMPONENT_OUTAGE"):
        t.stop_component("controlplane")
    assert fake.objects[("apps/v1/deployments", "istio-system", "istiod")]["spec"][
        "replicas"] == 1
    t.down()
    monkeypatch.setenv("MESHPROOF_ALLOW_COMPONENT_OUTAGE", "1")
    t = start(fake, ISTIO)
    assert t.components() == {"controlplane": True}
    t.stop_component("controlplane")
    dep = fake.objects[("apps/v1/deployments", "istio-system", "istiod")]
    assert dep["spec"]["replicas"] == 0
    # the run is killed here: the next 'down' scales istiod back
    removed = kt.down_leftovers()
    assert removed["restored"] == ["istio-system/istiod"]
    assert dep["spec"]["replicas"] == 1


# ---------------------------------------------------------------- failures and cleanup


def test_never_ready_names_pod_and_events_and_cleans_up(fake):
    fake.stuck["ratings"] = "ImagePullBackOff"
    t0 = time.monotonic()
    with pytest.raises(TargetError) as e:
        kt.start_target(NONE, "", ready_timeout_s=1.5)
    assert time.monotonic() - t0 < 10
    msg = str(e.value)
    assert "bookinfo/ratings: 0/1 ready" in msg
    assert "bookinfo/ratings-" in msg and "ImagePullBackOff" in msg
    assert "Failed to pull image" in msg  # the pod's events
    fake._reconcile()
    assert not fake.kinds("v1/namespaces")


def test_ctrl_c_during_bring_up_removes_everything(fake):
    def progress(msg, done, total):
        if done == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kt.start_target(NONE, "", progress=progress, ready_timeout_s=5)
    fake._reconcile()
    assert not fake.kinds("v1/namespaces")


def _leftover(fake, owner):
    fake.put("v1/namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "team-a", "labels": {RUN_LABEL: "rdead", MANAGED_LABEL: "true"},
        "annotations": {OWNER_ANNOTATION: owner}}})


def test_next_run_removes_a_killed_runs_leftovers(fake):
    _leftover(fake, "elsewhere:1")
    t = start(fake)
    assert fake.objects[("v1/namespaces", "", "team-a")]["metadata"]["labels"][RUN_LABEL] \
        == t.run_id
    t.down()


def test_a_live_run_is_not_touched(fake):
    _leftover(fake, f"{socket.gethostname()}:1")  # pid 1 is alive
    with pytest.raises(TargetError, match="another meshproof run"):
        start(fake)
    assert ("v1/namespaces", "", "team-a") in fake.objects


def test_foreign_namespace_is_not_touched(fake):
    fake.put("v1/namespaces", "", {"metadata": {"name": "bookinfo"}})
    with pytest.raises(TargetError, match="bookinfo exist and are not meshproof's"):
        start(fake)
    assert creates(fake) == []


def test_down_target_kube_module(fake, capsys):
    from meshproof.targets.kube.__main__ import main

    _leftover(fake, "elsewhere:1")
    assert main(["down"]) == 0
    assert "team-a" in capsys.readouterr().out
    assert main(["down"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_attach_finds_the_run(fake):
    t = start(fake)
    again = kt.attach()
    assert again.run_id == t.run_id and len(again.pods()) == 14
    t.down()
    with pytest.raises(MeshproofError, match="no meshproof run"):
        kt.attach()


#: NetworkChaos's fields as Chaos Mesh's Go types declare them (api/v1alpha1:
#: networkchaos_types.go NetworkChaosSpec with the inline PodSelector; selector.go
#: PodSelectorSpec), for a strict check offline (no CRD schema package exists here).
CHAOS_SPEC = {"selector", "mode", "value", "action", "duration", "direction", "target",
              "externalTargets", "delay", "loss", "duplicate", "corrupt", "bandwidth",
              "device", "targetDevice"}
CHAOS_SELECTOR = {"namespaces", "labelSelectors", "fieldSelectors", "annotationSelectors",
                  "expressionSelectors", "nodes", "pods", "nodeSelectors",
                  "podPhaseSelectors"}


def _check_network_chaos(obj):
    assert obj["apiVersion"] == "chaos-mesh.org/v1alpha1" and obj["kind"] == "NetworkChaos"
    spec = obj["spec"]
    assert set(spec) <= CHAOS_SPEC, set(spec) - CHAOS_SPEC
    assert spec["action"] in {"netem", "delay", "loss", "duplicate", "corrupt", "partition",
                              "bandwidth"}
    assert spec.get("direction", "") in {"to", "from", "both", ""}
    for sel in (spec, spec["target"]):
        assert sel["mode"] in {"one", "all", "fixed", "fixed-percent", "random-max-percent"}
        assert set(sel["selector"]) <= CHAOS_SELECTOR
        pods = sel["selector"]["pods"]
        assert all(isinstance(ns, str) and all(isinstance(n, str) for n in names)
                   for ns, names in pods.items())
    assert set(spec["target"]) <= {"selector", "mode", "value"}
    assert "duration" not in spec  # lasts until unblock deletes it


def test_block_uses_chaos_mesh_networkchaos_when_installed(fake):
    import kubernetes_validate

    fake.api_groups["chaos-mesh.org/v1alpha1"] = ["networkchaos", "podchaos"]
    t = start(fake)
    assert t.block_method == "networkchaos" and "block" in t.capabilities()
    a, b = t.pod("team-a", "client"), t.pod("team-b", "echo")
    t.block(a, b)
    [chaos] = fake.kinds("chaos-mesh.org/v1alpha1/networkchaos")
    _check_network_chaos(chaos)
    # its metadata is an ObjectMeta: checked strictly through a kind that has only that
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": chaos["metadata"]},
                                 kubernetes_validate.latest_version(), strict=True)
    assert chaos["spec"]["selector"]["pods"] == {"team-a": [a.name]}
    assert chaos["spec"]["target"]["selector"]["pods"] == {"team-b": [b.name]}
    assert fake.kinds("networking.k8s.io/v1/networkpolicies") == []
    t.unblock(a, b)
    assert fake.kinds("chaos-mesh.org/v1alpha1/networkchaos") == []
    t.down()


def test_chaos_mesh_installed_but_not_permitted_falls_back_to_networkpolicy(fake):
    fake.api_groups["chaos-mesh.org/v1alpha1"] = ["networkchaos"]
    fake.denied.add(("create", "chaos-mesh.org", "networkchaos"))
    t = start(fake)
    assert t.block_method == "networkpolicy" and "block" in t.capabilities()
    fake.denied.add(("create", "networking.k8s.io", "networkpolicies"))
    t.down()
    t = start(fake)
    assert "block" not in t.capabilities()
    why = t.missing_reason("block")
    assert "networkpolicies" in why and "may not create networkchaos" in why
    t.down()


def test_chaos_activities_attach_with_the_mesh_and_the_opt_in_flag(fake, monkeypatch):
    """``meshproof chaos --target kube --mesh istio --allow-component-outage``: the run is
    started in one process and the activities attach in another (chaos/faults.py via
    registry.attach_target): the attached target must see istiod as a component only
    with the flag, and find the load twins' topology when that is what runs."""
    fake.add_istiod()
    monkeypatch.setenv("MESHPROOF_MESH", "istio")
    t = start(fake, ISTIO)
    assert "components" not in kt.attach().capabilities()
    monkeypatch.setenv("MESHPROOF_ALLOW_COMPONENT_OUTAGE", "1")
    again = kt.attach()
    assert again.components() == {"controlplane": True}
    again.stop_component("controlplane")
    assert fake.objects[("apps/v1/deployments", "istio-system", "istiod")]["spec"]["replicas"] == 0
    again.start_component("controlplane")
    assert fake.objects[("apps/v1/deployments", "istio-system", "istiod")]["spec"]["replicas"] == 1
    t.down()
    load = start(fake, ISTIO, topology="load")
    assert {p.namespace for p in kt.attach().pods()} == {"load-plain", "load-mesh"}
    load.down()
