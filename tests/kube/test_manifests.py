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
    assert set(cm["data"]) == {"workload.py", "probe.py", "loadgen.py"}
    assert "--once" in cm["data"]["probe.py"] and "--once" in cm["data"]["loadgen.py"]


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
