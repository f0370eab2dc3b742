"""Every object the kube target creates passes strict schema validation (kubernetes-validate,
unknown fields rejected), and the topology's shape is what DESIGN.md says."""

from __future__ import annotations

import kubernetes_validate
import pytest

from meshproof.mesh.istio.adapter import kube_profile
from meshproof.targets.kube import manifests
from meshproof.targets.kube.config import MANAGED_LABEL, NO_MESH, RUN_LABEL
from meshproof.topology import fixture_topology, named

VERSION = kubernetes_validate.latest_version()


def objects(profile=None):
    return manifests.topology_objects(fixture_topology(reviews_replicas=2), "rtest",
                                      profile or kube_profile(), "python:3.12-slim")


def load_objects(profile=None, clients=3):
    """The load twins (meshproof.load): built by the same manifest functions."""
    return manifests.topology_objects(named("load", load_clients=clients), "rtest",
                                      profile or kube_profile(), "python:3.12-slim")


def all_objects():
    out = objects() + objects(NO_MESH) + load_objects()  # the twins: Istio (no-mesh: as fixture)
    out += [manifests.block_policy("1abcd", "team-a", "a", "b", "rtest")]
    out += manifests.toxiproxy("team-b", "echo", "rtest", "python:3.12-slim")
    return out


@pytest.mark.parametrize("obj", all_objects(),
                         ids=lambda o: f"{o['kind']}-{o['metadata'].get('namespace', '')}-"
                                       f"{o['metadata']['name']}")
def test_strictly_valid(obj):
    kubernetes_validate.validate(obj, VERSION, strict=True)


def test_strict_validation_rejects_an_unknown_field():
    bad = objects()[-1]
    bad["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSION, strict=True)


def test_topology_as_objects():
    objs = objects()
    kinds = {}
    for o in objs:
        kinds.setdefault(o["kind"], []).append(o)
        assert o["metadata"]["labels"][RUN_LABEL] == "rtest"
        assert o["metadata"]["labels"][MANAGED_LABEL] == "true"
    assert sorted(n["metadata"]["name"] for n in kinds["Namespace"]) == [
        "bookinfo", "outside", "team-a", "team-b", "team-c"]
    for ns in kinds["Namespace"]:
        labels = ns["metadata"]["labels"]
        meshed = ns["metadata"]["name"] != "outside"
        assert (labels.get("istio-injection") == "enabled") is meshed
        # restricted enforced where the mesh allows (Istio without CNI: meshed only warns)
        assert labels.get("pod-security.kubernetes.io/enforce") == (None if meshed
                                                                    else "restricted")
    assert len(kinds["Deployment"]) == 14
    assert {s["metadata"]["name"] for s in kinds["Service"]} >= {"reviews", "reviews-v1",
                                                                 "sentinel", "echo"}
    cm = kinds["ConfigMap"][0]
    assert {"workload.py", "probe.py", "loadgen.py", "pylib__h2__connection.py",
            "pylib__hpack__hpack.py", "pylib__hyperframe__frame.py"} <= set(cm["data"])
    assert "--once" in cm["data"]["probe.py"] and "--once" in cm["data"]["loadgen.py"]
    # A ConfigMap holds at most 1 MiB; the app, the probe and the HTTP/2 libraries fit.
    assert sum(len(k) + len(v.encode()) for k, v in cm["data"].items()) < 1024 * 1024
    # Every key is mounted back at its path (pylib/h2/connection.py beside probe.py).
    for d in kinds["Deployment"]:
        vol = d["spec"]["template"]["spec"]["volumes"][0]["configMap"]
        assert {i["key"] for i in vol["items"]} == set(cm["data"])
        assert {"key": "pylib__h2__connection.py", "path": "pylib/h2/connection.py"} \
            in vol["items"]


def test_service_ports_carry_their_protocol():
    """Istio reads a port's protocol from its name prefix or appProtocol: both say it."""
    echo = next(o for o in objects() if o["kind"] == "Service"
                and o["metadata"]["name"] == "echo")
    ports = {p["port"]: p for p in echo["spec"]["ports"]}
    assert {p: (v["name"], v["appProtocol"]) for p, v in ports.items()} == {
        80: ("http", "http"), 81: ("http2", "http2"), 7070: ("grpc", "grpc"),
        9090: ("tcp", "tcp")}
    dep = next(o for o in objects() if o["kind"] == "Deployment"
               and o["metadata"]["name"] == "echo")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert [p["containerPort"] for p in c["ports"]] == [9080, 9081, 7070, 9090]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert (env["MESHPROOF_HTTP_PORTS"], env["MESHPROOF_TCP_PORTS"]) == ("9081,7070", "9090")


def test_load_twins_as_objects():
    """Meshed and unmeshed twins: the same workloads in both, injection only in load-mesh,
    the client workload with one pod per generator, the stdlib generator mounted."""
    objs = load_objects(clients=3)
    ns = {o["metadata"]["name"]: o["metadata"]["labels"] for o in objs
          if o["kind"] == "Namespace"}
    assert set(ns) == {"load-plain", "load-mesh"}
    assert ns["load-mesh"].get("istio-injection") == "enabled"
    assert "istio-injection" not in ns["load-plain"]
    assert ns["load-plain"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deps = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs
            if o["kind"] == "Deployment"}
    for twin in ("load-plain", "load-mesh"):
        assert {n for t, n in deps if t == twin} == {"client", "productpage", "details",
                                                     "reviews-v1"}
        assert deps[(twin, "client")]["spec"]["replicas"] == 3
        assert deps[(twin, "reviews-v1")]["spec"]["replicas"] == 1
    cms = [o for o in objs if o["kind"] == "ConfigMap"]
    assert len(cms) == 2 and all("loadgen.py" in c["data"] for c in cms)


def test_pods_meet_restricted():
    for d in (o for o in objects() if o["kind"] == "Deployment"):
        spec = d["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert sc["runAsNonRoot"] is True
        assert not any(v.get("hostPath") for v in spec["volumes"])


def test_reviews_replicas_and_image_override():
    objs = manifests.topology_objects(fixture_topology(reviews_replicas=3), "r1", NO_MESH,
                                      "registry.local/python:3")
    deps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    assert deps["reviews-v2"]["spec"]["replicas"] == 3
    assert deps["reviews-v2"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "registry.local/python:3"
    # without a mesh every namespace enforces restricted
    assert all(o["metadata"]["labels"].get("pod-security.kubernetes.io/enforce")
               == "restricted" for o in objs if o["kind"] == "Namespace")


def test_ports_read_back_as_written():
    """The kube target reads each Service port's protocol back (appProtocol, else the name's
    prefix, Istio's rule) and each pod's app ports from its container ports."""
    from meshproof.targets.kube.apply import app_ports
    from meshproof.targets.kube.target import service_ports
    from meshproof.targets.model import ServicePort
    from meshproof.topology import fixture_topology

    t = fixture_topology()
    for s in t.services:
        got = service_ports(manifests.service(s, "rtest")["spec"])
        assert [(p.port, p.target_port, p.protocol) for p in got] == [
            (p.port, p.target_port, p.protocol) for p in s.ports]
    # A Service written by someone else: appProtocol wins, else the name prefix, else tcp.
    assert service_ports({"ports": [
        {"name": "grpc-web", "port": 1}, {"name": "x", "port": 2, "appProtocol": "http2"},
        {"name": "mongo", "port": 3, "targetPort": "named"},
        {"name": "http", "port": 4, "appProtocol": "kubernetes.io/h2c"}]}) == (
        ServicePort(1, 1, "grpc", "grpc-web"), ServicePort(2, 2, "http2", "x"),
        ServicePort(3, 3, "tcp", "mongo"), ServicePort(4, 4, "http2", "http"))
    w = next(w for w in t.workloads if w.name == "echo")
    spec = manifests.deployment(w, "rtest", "python:3.12-slim")["spec"]["template"]["spec"]
    assert app_ports(spec) == {"port": 9080, "ports": w.ports}
