"""Conformance: mTLS (STRICT / PERMISSIVE, identity, the wire).

Each check runs on real traffic from client pods, only after the mesh says
the intent is programmed; a deny is always judged beside an allowed request
in the same window, and a wire check beside its plaintext positive control.
"""

from __future__ import annotations

import allure
import pytest

from meshproof.intent import MTLSMode
from meshproof.results import statuses

pytestmark = [pytest.mark.lab, pytest.mark.mesh, allure.feature("mTLS")]

ECHO_B = {"url": "http://echo.team-b/echo", "timeout_s": 2}


def test_app_sees_the_callers_spiffe_id(lab, mesh):
    r = lab.probe("team-a/client-0", ECHO_B)["results"][0]
    xfcc = r["body"]["headers"]["x-forwarded-client-cert"]
    assert "URI=spiffe://cluster.local/ns/team-a/sa/client" in xfcc
    assert "By=spiffe://cluster.local/ns/team-b/sa/echo" in xfcc
    # An unmeshed caller (PERMISSIVE) has no identity to show, and cannot forge one:
    forged = lab.probe("outside/client-0", {**ECHO_B, "headers": {
        "x-forwarded-client-cert": "URI=spiffe://cluster.local/ns/team-a/sa/client"}})
    assert "x-forwarded-client-cert" not in forged["results"][0]["body"]["headers"]


def test_strict_refuses_plaintext_while_meshed_client_succeeds(lab, mesh):
    mesh.wait_programmed(mesh.apply(MTLSMode("STRICT", namespace="team-b")))
    meshed = lab.probe("team-a/client-0", {**ECHO_B, "count": 5})
    outside = lab.probe("outside/client-0", {**ECHO_B, "count": 5})
    bypass = lab.probe("team-a/client-0", {**ECHO_B, "count": 5}, as_proxy_uid=True)
    assert statuses(meshed) == [200] * 5, meshed  # positive control in the same window
    for ans in (outside, bypass):
        assert statuses(ans) == [0] * 5, ans
        assert {r["error"] for r in ans["results"]} <= {"reset", "closed", "refused"}
    # PERMISSIVE lets the plaintext caller in again.
    mesh.wait_programmed(mesh.apply(MTLSMode("PERMISSIVE", namespace="team-b")))
    assert statuses(lab.probe("outside/client-0", ECHO_B)) == [200]


def test_workload_mode_beats_namespace_mode(lab, mesh):
    mesh.apply(MTLSMode("STRICT", namespace="team-b"))
    mesh.wait_programmed(mesh.apply(MTLSMode("PERMISSIVE", namespace="team-b",
                                             workload="echo")))
    assert statuses(lab.probe("outside/client-0", ECHO_B)) == [200]


def test_wire_is_encrypted_and_marker_seen_when_plaintext(lab, mesh):
    marker = "MESHPROOF-WIRE-MARKER-51c2"
    order = {**ECHO_B, "count": 10, "headers": {"x-marker": marker}}
    mesh.wait_programmed(mesh.apply(MTLSMode("STRICT", namespace="team-b")))
    cid = lab.capture_start("team-a/client-0", "team-b/echo-0")
    assert statuses(lab.probe("team-a/client-0", order)) == [200] * 10
    meshed = lab.capture_stop(cid, marker=marker)
    assert meshed["marker_hits"] == 0, meshed
    assert meshed["tls_records"] >= 20, meshed  # 10 requests and 10 responses at least
    # Positive control: the same marker, plaintext from outside (PERMISSIVE), is seen.
    mesh.wait_programmed(mesh.apply(MTLSMode("PERMISSIVE", namespace="team-b")))
    cid = lab.capture_start("outside/client-0", "team-b/echo-0")
    assert statuses(lab.probe("outside/client-0", order)) == [200] * 10
    plain = lab.capture_stop(cid, marker=marker)
    assert plain["marker_hits"] >= 10 and plain["tls_records"] == 0, plain
