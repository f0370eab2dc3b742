"""Conformance: SMI access control and namespace isolation (team-a/b/c).

Access mode ``smi`` in team-b: deny by default, TrafficTargets allow. Each
check judges allowed and denied pairs in the same window, so a dead
destination cannot pass as "denied", and reports how denial looked (HTTP
403, reset or refused).
"""

from __future__ import annotations

import pytest

from meshproof.conformance.check import check
from meshproof.conformance.traffic import denial_kind, denied, send, summary
from meshproof.intent import AccessMode, AccessRule, HTTPMatch

pytestmark = [pytest.mark.lab, pytest.mark.mesh]

ECHO_B = "http://echo.team-b/echo"
N = 10


def ok_all(results: list[dict]) -> bool:
    return all(r["status"] == 200 for r in results)


@check("access-deny-by-default", "with access mode smi, team-a (allowed by a TrafficTarget) "
       "reaches team-b while team-c and the unmeshed client are denied in the same window",
       features=["access-control"], catches=["authz-open"],
       intents=["AccessMode", "AccessRule"])
def test_deny_by_default(lab, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/allow-team-a", "team-b/echo", ("team-a/client",))]))
    verdict.touch("team-b/echo-0")
    allowed = send(lab, "team-a/client-0", ECHO_B, N)
    other = send(lab, "team-c/client-0", ECHO_B, N)
    outside = send(lab, "outside/client-0", ECHO_B, N)
    same_ns = send(lab, "team-b/client-0", ECHO_B, N)
    ok = [verdict.exact("team-a -> team-b allowed", ok_all(allowed), summary(allowed)),
          verdict.exact("team-c -> team-b denied", all(denied(r) for r in other),
                        {**summary(other), "denied_as": denial_kind(other)}),
          verdict.exact("outside -> team-b denied", all(denied(r) for r in outside),
                        {**summary(outside), "denied_as": denial_kind(outside)}),
          verdict.exact("team-b -> team-b denied (no rule for it)",
                        all(denied(r) for r in same_ns),
                        {**summary(same_ns), "denied_as": denial_kind(same_ns)})]
    assert all(ok), verdict.lines


@check("access-other-namespaces-unaffected", "access mode smi in team-b leaves team-c "
       "permissive: every caller still reaches team-c", features=["access-control"],
       intents=["AccessMode"])
def test_other_namespaces_unaffected(lab, mesh, verdict):
    mesh.wait_programmed(mesh.apply(AccessMode("smi", namespace="team-b")))
    results = send(lab, "team-a/client-0", "http://echo.team-c/echo", N)
    results += send(lab, "outside/client-0", "http://echo.team-c/echo", N)
    assert verdict.exact("team-c reachable", ok_all(results), summary(results)), verdict.lines


@check("access-route-rule", "a TrafficTarget limited to GET /echo... allows exactly that: "
       "POST and other paths are denied", features=["access-control", "access-control-routes"],
       catches=["authz-open"], intents=["AccessMode", "AccessRule", "HTTPRouteGroup"])
def test_route_rule(lab, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/get-echo", "team-b/echo", ("team-a/client",),
                   (HTTPMatch(path_regex="/echo.*", methods=("GET",)),))]))
    verdict.touch("team-b/echo-0")
    get = send(lab, "team-a/client-0", ECHO_B, N)
    post = send(lab, "team-a/client-0", ECHO_B, N, method="POST")
    other = send(lab, "team-a/client-0", "http://echo.team-b/status/200", N)
    ok = [verdict.exact("GET /echo allowed", ok_all(get), summary(get)),
          verdict.exact("POST /echo denied", all(denied(r) for r in post),
                        {**summary(post), "denied_as": denial_kind(post)}),
          verdict.exact("GET /status/200 denied", all(denied(r) for r in other),
                        {**summary(other), "denied_as": denial_kind(other)})]
    assert all(ok), verdict.lines
