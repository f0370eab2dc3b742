"""The Istio adapter against FakeApiServer (a fake, not Kubernetes or istiod): resources
applied as rendered and labelled for cleanup, programmed from istiod's per-proxy sync
status (nonces), the sentinel method when that status is unreadable, syncz parsing."""

from __future__ import annotations

import json
import sys

import pytest

from meshproof import registry
from meshproof.errors import MeshproofError
from meshproof.intent import AccessRule, HTTPMatch, Retry, TrafficSplit
from meshproof.mesh.base import NotProgrammed
from meshproof.mesh.blackbox import sentinel_status
from meshproof.mesh.istio import syncz
from meshproof.mesh.istio.adapter import IstioMesh, kube_profile
from meshproof.mesh.istio.render import Unsupported
from meshproof.targets.kube.config import MANAGED_LABEL, RUN_LABEL
from tests.istio.istio_model import check

SPLIT = TrafficSplit("bookinfo/reviews", (("reviews-v1", 90), ("reviews-v2", 10)))


@pytest.fixture
def kube(fake):
    fake.add_istiod()
    t = registry.start_target("kube", "istio", ready_timeout_s=5)
    yield t
    t.down()


def status_doc(fake, sent="n1", acked="n1", missing=()):
    out = []
    for (coll, ns, name), _ in list(fake.objects.items()):
        if coll == "v1/pods" and ns != "outside" and name not in missing:
            out.append({"cluster_id": "Kubernetes", "proxy": f"{name}.{ns}",
                        "istio_version": "1.24.2", "cluster_sent": sent,
                        "cluster_acked": sent, "listener_sent": sent, "listener_acked": sent,
                        "route_sent": sent, "route_acked": acked,
                        "endpoint_sent": sent, "endpoint_acked": sent})
    return out


def test_registry_and_profile():
    entry = registry.mesh_entry("istio", "kube")
    assert entry.installers["kube"].endswith(":kube_profile")
    p = kube_profile()
    assert p.namespace_labels == {"istio-injection": "enabled"}
    assert p.control_plane_namespace == "istio-system"


def test_istio_needs_the_kube_target():
    from tests.unit.fakes import FakeTarget

    with pytest.raises(MeshproofError, match="runs on the kube target"):
        IstioMesh(FakeTarget())


def test_describe_and_claims(kube):
    m = IstioMesh(kube)
    assert m.describe().version == "1.24.2"
    assert "traffic-split" in m.claims() and "gamma-httproute" not in m.claims()
    assert not m.capabilities()


def test_apply_creates_labelled_resources_then_reset_removes_them(fake, kube):
    fake.syncz = lambda f: status_doc(f)
    m = IstioMesh(kube)
    m.apply(SPLIT)
    vs = fake.objects[("networking.istio.io/v1/virtualservices", "bookinfo", "reviews")]
    dr = fake.objects[("networking.istio.io/v1/destinationrules", "bookinfo", "reviews")]
    sent = fake.objects[("networking.istio.io/v1/virtualservices", "bookinfo", "sentinel")]
    for d in (vs, dr, sent):
        assert d["metadata"]["labels"] == {RUN_LABEL: kube.run_id, MANAGED_LABEL: "true"}
        check({k: v for k, v in d.items() if k in ("apiVersion", "kind", "spec")}
              | {"metadata": {k: v for k, v in d["metadata"].items()
                              if k in ("name", "namespace", "labels")}})
    assert sent["spec"]["http"][0]["fault"]["abort"]["httpStatus"] == sentinel_status(1)
    m.apply(Retry("bookinfo/reviews", 2))  # same host: the one VirtualService is replaced
    assert fake.objects[("networking.istio.io/v1/virtualservices", "bookinfo", "reviews")][
        "spec"]["http"][0]["retries"]["attempts"] == 2
    m.reset()
    assert ("networking.istio.io/v1/virtualservices", "bookinfo", "reviews") not in fake.objects
    assert ("networking.istio.io/v1/destinationrules", "bookinfo", "reviews") not in fake.objects
    ev = m.evidence(kube.workload_pods("bookinfo", "client"))
    assert [r["metadata"]["name"] for r in ev["resources"]] == ["sentinel"]
    # a failure carries each pod's status, events and every container's log
    [client] = kube.workload_pods("bookinfo", "client")
    pod_ev = ev["pods"][client.key]
    assert pod_ev["status"] == "ready" and "events" in pod_ev
    assert pod_ev["log:app"] == "app log line\n"
    assert any("/log" in p and client.name in p for _m, p in fake.requests)


def test_programmed_when_every_proxy_acked_a_new_push(fake, kube):
    m = IstioMesh(kube)
    fake.syncz_script = [status_doc(fake, "n1", "n1"),   # before the apply
                         status_doc(fake, "n1", "n1"),   # not pushed yet
                         status_doc(fake, "n2", "n1"),   # pushed, RDS not ACKed
                         status_doc(fake, "n2", "n2")]   # every type ACKed
    took = m.wait_programmed(m.apply(SPLIT), timeout=10)
    assert m.describe().programmed_method == "acked" and took < 5
    assert fake.syncz_script == []
    assert m.waits[-1].method == "acked"


def test_not_programmed_names_the_proxies(fake, kube):
    m = IstioMesh(kube)
    fake.syncz = lambda f: status_doc(f, "n2", "n1", missing=())
    token = m.apply(SPLIT)
    with pytest.raises(NotProgrammed, match=r"not ACKed: route"):
        m.wait_programmed(token, timeout=0.5)
    pods = [n for (c, ns, n) in fake.objects if c == "v1/pods" and ns == "team-a"]
    fake.syncz = lambda f: status_doc(f, "n3", "n3", missing=pods)
    with pytest.raises(NotProgrammed, match="not connected to istiod"):
        m.wait_programmed(m.apply(SPLIT), timeout=0.5)


def test_sentinel_when_sync_status_is_unreadable(fake, kube):
    fake.syncz = None  # istiod's monitoring port does not answer through the proxy
    m = IstioMesh(kube)
    token = m.apply(SPLIT)
    want = sentinel_status(int(token.value))
    answer = json.dumps({"results": [{"status": want, "latency_us": 5}] * 3})
    fake.exec_rewrite = lambda cmd: [sys.executable, "-c", f"print({answer!r})"]
    n = len(fake.execs)
    m.wait_programmed(token, timeout=10)
    assert m.describe().programmed_method == "sentinel"
    meshed = [p for p in kube.pods() if p.meshed]
    assert len(fake.execs) - n == len(meshed)  # one batch of 3 fresh requests per pod
    stale = json.dumps({"results": [{"status": want - 1, "latency_us": 5}] * 3})
    fake.exec_rewrite = lambda cmd: [sys.executable, "-c", f"print({stale!r})"]
    with pytest.raises(NotProgrammed, match="sentinel .* not seen 3x"):
        m.wait_programmed(m.apply(SPLIT), timeout=0.3)


def test_unsupported_intent_changes_nothing(fake, kube):
    fake.syncz = lambda f: status_doc(f)
    m = IstioMesh(kube)
    m.apply(SPLIT)
    before = dict(fake.objects)
    from meshproof.intent import AccessMode

    m.apply(AccessMode("smi", "team-b"))
    with pytest.raises(Unsupported):
        m.apply(AccessRule("team-b/r", "team-b/echo", ("team-a/client",),
                           (HTTPMatch(path_regex="/echo/[0-9]+"),)))
    assert ("security.istio.io/v1/authorizationpolicies", "team-b", "allow-r") \
        not in fake.objects
    assert set(before) <= set(fake.objects)


def test_cleanup_sweeps_root_namespace_resources(fake, kube):
    from meshproof.intent import MTLSMode

    fake.syncz = lambda f: status_doc(f)
    m = IstioMesh(kube)
    m.apply(MTLSMode("STRICT"))
    key = ("security.istio.io/v1/peerauthentications", "istio-system", "default")
    assert key in fake.objects
    removed = kube.down()
    assert "PeerAuthentication istio-system/default" in removed["mesh_resources"]
    assert key not in fake.objects


def test_syncz_client_config_shape():
    doc = {"resources": [{"node": {"id": "sidecar~10.1.1.2~echo-1.team-b~team-b.svc"},
                          "genericXdsConfigs": [
                              {"typeUrl": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                               "configStatus": "SYNCED", "versionInfo": "v7"},
                              {"typeUrl": "type.googleapis.com/envoy.config.route.v3."
                                          "RouteConfiguration", "configStatus": "STALE",
                               "versionInfo": "v7"}]}]}
    parsed = syncz.parse(doc)
    assert list(parsed) == ["echo-1.team-b"]
    assert not parsed["echo-1.team-b"].synced
    assert parsed["echo-1.team-b"].unsynced() == ["RouteConfiguration"]


def test_refused_resource_is_config_rejected(fake, kube, monkeypatch):
    from meshproof.mesh.base import ConfigRejected
    from meshproof.targets.kube.rest import KubeApiError, Rest

    fake.syncz = lambda f: status_doc(f)
    m = IstioMesh(kube)

    def refuse(self, obj):
        raise KubeApiError(400, "admission webhook validation.istio.io denied the request",
                           "POST", "/x")

    monkeypatch.setattr(Rest, "replace_or_create", refuse)
    with pytest.raises(ConfigRejected, match="validation.istio.io denied"):
        m.apply(SPLIT)
