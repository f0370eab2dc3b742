"""The reference mesh on real traffic: the app through the mesh, the CA, endpoints,
evidence, and both adapters (ACK-driven and black box) on the same lab."""

from __future__ import annotations

import json

import pytest

from meshproof.intent import TrafficSplit
from meshproof.mesh.blackbox import ReferenceBlackbox, sentinel_status, SENTINEL_URL
from meshproof.mesh.refpaths import CA_SOCKET, TOKENS
from meshproof.pki import csr_and_key
from meshproof.probe import send

pytestmark = [pytest.mark.lab, pytest.mark.mesh]


def reviews_versions(lab, count: int) -> list[str]:
    return [r.version or f"error:{r.error}"
            for r in send(lab, lab.pod("bookinfo", "client"), "http://reviews/reviews/0", count)]


def test_productpage_works_through_the_mesh(lab, mesh):
    results = send(lab, lab.pod("bookinfo", "client"), "http://productpage/", 20, concurrency=2)
    assert [r.status for r in results] == [200] * 20
    assert all(r.json["ok"] for r in results)


def test_ca_refuses_a_csr_for_a_foreign_identity(lab, mesh):
    from refmesh import unixhttp

    client = lab.pod("team-a", "client")
    book = json.loads(TOKENS.read_text())
    token = next(t for t, who in book.items()
                 if (who["namespace"], who["service_account"]) == ("team-a", "client"))
    status, body = unixhttp.request_json(CA_SOCKET, "POST", "/sign",
                                         {"csr": csr_and_key(client.identity)[0], "token": token})
    assert status == 200 and body["spiffe_id"] == client.identity
    other = lab.pod("team-b", "echo").identity
    status, body = unixhttp.request_json(CA_SOCKET, "POST", "/sign",
                                         {"csr": csr_and_key(other)[0], "token": token})
    assert status == 403, body


def test_adapter_issues_a_certificate_for_an_identity(lab, mesh):
    issued = mesh.issue_certificate(lab.pod("team-a", "client"), ttl_s=60)
    assert issued.identity == "spiffe://cluster.local/ns/team-a/sa/client"
    assert "BEGIN CERTIFICATE" in issued.cert and "BEGIN CERTIFICATE" in issued.root


def test_killed_sidecar_pod_leaves_endpoints_and_comes_back(lab, mesh):
    v3 = lab.pod("bookinfo", "reviews-v3")
    lab.kill_pod(v3)
    try:
        assert "v3" not in set(reviews_versions(lab, 30))
    finally:
        lab.revive_pod(v3)
    # The revived endpoint reaches the callers' sidecars by an EDS push that follows the
    # lab's registry change asynchronously: it must arrive within a stated bound (10 s).
    import time

    deadline, seen = time.monotonic() + 10, set()
    while seen != {"v1", "v2", "v3"} and time.monotonic() < deadline:
        seen = set(reviews_versions(lab, 60))  # P(v3 unseen | uniform) = (2/3)^60 < 1e-10
    assert seen == {"v1", "v2", "v3"}, seen


def test_evidence_has_config_dump(lab, mesh):
    echo = lab.pod("team-b", "echo")
    ev = mesh.evidence([echo])
    assert ev[echo.key]["config_dump"]["configs"]
    assert "listeners" in ev[echo.key]["generated"]


def test_blackbox_programs_through_files_and_the_sentinel(lab, mesh):
    """The black box sees its sentinel from every meshed pod once programmed, a split it
    applied takes effect, and its wait fails (bounded) when the sentinel never comes."""
    bb = ReferenceBlackbox(lab)
    try:
        token = bb.apply(TrafficSplit("bookinfo/reviews", (("reviews-v2", 100),)))
        took = bb.wait_programmed(token, timeout=10)
        assert 0 < took < 10 and bb.waits[-1].method == "sentinel"
        assert "kind: TrafficSplit" in bb.files[-1] and "kind: FaultInjection" in bb.files[-1]
        assert set(reviews_versions(lab, 20)) == {"v2"}
        for p in (p for p in lab.pods() if p.meshed):
            assert send(lab, p, SENTINEL_URL)[0].status == sentinel_status(bb.generation)
        # A token whose sentinel was never published cannot be seen: NotProgrammed, bounded.
        from meshproof.mesh.base import NotProgrammed, Token

        with pytest.raises(NotProgrammed, match="sentinel"):
            bb.wait_programmed(Token(bb.name, bb.generation + 1), timeout=1)
    finally:
        bb.wait_programmed(bb.reset())


def test_pooled_requests_survive_mtls_mode_changes(lab, mesh):
    """A correct mesh never fails an in-flight or pooled request on a policy change: a
    caller keeps pooled mTLS connections busy while team-b flips STRICT <-> PERMISSIVE
    six times; every request answers 200, and the server's sidecar updated its inbound
    listener in place (no whole-listener drain) each time."""
    import threading

    from refmesh.admin import EnvoyAdmin

    from meshproof.intent import MTLSMode
    from meshproof.mesh.refpaths import admin_socket

    echo = lab.pod("team-b", "echo")
    admin = EnvoyAdmin(admin_socket(echo.namespace, echo.name), timeout=5)
    in_place = r"listener_manager\.listener_in_place_updated$"
    before = sum(admin.stats(in_place).values())
    results: list = []
    sender = threading.Thread(target=lambda: results.extend(send(
        lab, lab.pod("team-a", "client"), "http://echo.team-b/echo", 1500, fresh=False,
        concurrency=4)))
    sender.start()
    for i in range(6):
        mesh.wait_programmed(mesh.apply(MTLSMode("STRICT" if i % 2 == 0 else "PERMISSIVE",
                                                 namespace="team-b")))
    sender.join(120)
    outcomes = {r.outcome for r in results}
    assert len(results) == 1500 and outcomes == {"200"}, outcomes
    assert sum(admin.stats(in_place).values()) - before >= 6


def test_a_crashed_sidecar_is_counted_as_a_restart(lab, mesh):
    """SIGKILL of a sidecar (a crash, not a planned stop): the supervisor brings it back
    and the target reports the restart, which the plugin records with the running check."""
    import os
    import signal
    import subprocess
    import time

    echo = lab.pod("team-c", "echo")
    name = f"{echo.key}/sidecar"
    before = lab.restarts().get(name, 0)
    from meshproof import paths

    # This lab's own run dir in the pattern: other labs on the machine (MESHPROOF_INSTANCE)
    # run the same pod names, and a bare "pods/team-c/echo-0" matched their Envoys too.
    pattern = f"{paths.RUN_DIR}/pods/{echo.namespace}/{echo.name}/sidecar/envoy"
    pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert len(pids) == 1, f"one Envoy for {pattern}, found {pids}"
    assert pids, "the sidecar's Envoy process"
    os.kill(int(pids[0]), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while lab.restarts().get(name, 0) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lab.restarts().get(name, 0) == before + 1
    while not lab.components().get(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the supervisor's readiness: admin answers, nothing warming
    assert all(r.status == 200 for r in send(lab, lab.pod("team-a", "client"),
                                             "http://echo.team-c/echo", 5))


@pytest.mark.parametrize("protocol,url,want", [
    ("http2", "http://echo.team-b:81/echo", "200 echo-0"),
    ("grpc", "http://echo.team-b:7070/meshproof.echo.EchoTestService/EchoStream", "grpc-0"),
    ("tcp", "tcp://echo.team-b:9090", "echoed echo-0"),
])
def test_cli_probe_speaks_each_protocol(lab, mesh, protocol, url, want):
    """``meshproof probe --protocol`` as a user types it, in a fresh process."""
    import os
    import subprocess
    import sys
    cp = subprocess.run([sys.executable, "-m", "meshproof.cli", "probe", "team-a/client-0", url,
                         "--protocol", protocol, "-n", "3", "--stream", "2"],
                        capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert want in cp.stdout and "3" in cp.stdout, cp.stdout
