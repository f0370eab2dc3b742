"""Conformance: SMI access control and namespace isolation (team-a/b/c).

Access mode ``smi`` in team-b: deny by default, TrafficTargets allow. Each
check judges allowed and denied pairs in the same window, so a dead
destination cannot pass as "denied", and reports how denial looked (HTTP
403, reset or refused).
"""

from __future__ import annotations

import pytest

from meshproof.conformance import protocols as proto
from meshproof.conformance.check import check
from meshproof.intent import AccessMode, AccessRule, HTTPMatch
from meshproof.conformance.pods import OUTSIDE, client, echo
from meshproof.probe import all_denied, all_ok, denial_evidence, send, summary

pytestmark = [pytest.mark.mesh]

ECHO_B = "http://echo.team-b/echo"
N = 10


@check("access-deny-by-default", "with access mode smi, team-a (allowed by a TrafficTarget) "
       "reaches team-b while team-c and the unmeshed client are denied in the same window",
       features=["access-control"], catches=["authz-open"],
       intents=["AccessMode", "AccessRule"])
def test_deny_by_default(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/allow-team-a", "team-b/echo", ("team-a/client",))]))
    verdict.touch(echo(target, "team-b"))
    allowed = send(target, client(target, "team-a"), ECHO_B, N)
    other = send(target, client(target, "team-c"), ECHO_B, N)
    outside = send(target, client(target, OUTSIDE), ECHO_B, N)
    same_ns = send(target, client(target, "team-b"), ECHO_B, N)
    ok = [verdict.exact("team-a -> team-b allowed", all_ok(allowed), summary(allowed)),
          verdict.exact("team-c -> team-b denied", all_denied(other), denial_evidence(other)),
          verdict.exact("outside -> team-b denied", all_denied(outside), denial_evidence(outside)),
          verdict.exact("team-b -> team-b denied (no rule for it)",
                        all_denied(same_ns), denial_evidence(same_ns))]
    assert all(ok), verdict.lines


@check("access-other-namespaces-unaffected", "access mode smi in team-b leaves team-c "
       "permissive: every caller still reaches team-c", features=["access-control"],
       intents=["AccessMode"])
def test_other_namespaces_unaffected(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply(AccessMode("smi", namespace="team-b")))
    results = send(target, client(target, "team-a"), "http://echo.team-c/echo", N)
    results += send(target, client(target, OUTSIDE), "http://echo.team-c/echo", N)
    assert verdict.exact("team-c reachable", all_ok(results), summary(results)), verdict.lines


@check("access-route-rule", "a TrafficTarget limited to GET /echo... allows exactly that: "
       "POST and other paths are denied", features=["access-control", "access-control-routes"],
       catches=["authz-open"], intents=["AccessMode", "AccessRule", "HTTPRouteGroup"])
def test_route_rule(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/get-echo", "team-b/echo", ("team-a/client",),
                   (HTTPMatch(path_regex="/echo.*", methods=("GET",)),))]))
    verdict.touch(echo(target, "team-b"))
    get = send(target, client(target, "team-a"), ECHO_B, N)
    post = send(target, client(target, "team-a"), ECHO_B, N, method="POST")
    other = send(target, client(target, "team-a"), "http://echo.team-b/status/200", N)
    ok = [verdict.exact("GET /echo allowed", all_ok(get), summary(get)),
          verdict.exact("POST /echo denied", all_denied(post), denial_evidence(post)),
          verdict.exact("GET /status/200 denied", all_denied(other), denial_evidence(other))]
    assert all(ok), verdict.lines


@check("access-deny-without-any-rule", "under access mode smi a destination that no "
       "TrafficTarget names is closed to every caller; the first rule for it opens it to "
       "exactly its source", features=["access-control"], catches=["deny-only-with-rules"],
       intents=["AccessMode", "AccessRule"])
def test_deny_without_any_rule(target, mesh, verdict):
    url = "http://echo.team-c/echo"
    c = echo(target, "team-c")
    verdict.touch(c)
    before = send(target, client(target, "team-a"), url, N)
    mesh.wait_programmed(mesh.apply(AccessMode("smi", namespace="team-c")))
    callers = {ns: send(target, client(target, ns), url, N)
               for ns in ("team-a", "team-b", "team-c", OUTSIDE)}
    mesh.wait_programmed(mesh.apply(
        AccessRule("team-c/allow-team-a", "team-c/echo", ("team-a/client",))))
    opened = send(target, client(target, "team-a"), url, N)
    still = send(target, client(target, "team-b"), url, N)
    ok = [verdict.exact("team-c's echo answers before (positive control)", all_ok(before),
                        summary(before))]
    ok += [verdict.exact(f"{ns} -> team-c denied with no rule at all", all_denied(r),
                         denial_evidence(r)) for ns, r in callers.items()]
    ok += [verdict.exact("the first rule lets team-a in", all_ok(opened), summary(opened)),
           verdict.exact("... and nobody else", all_denied(still), denial_evidence(still))]
    assert all(ok), verdict.lines


@check("access-route-path-exact", "a rule for path /echo allows exactly /echo: a longer "
       "path, a prefix of it and another case are denied", features=["access-control",
       "access-control-routes"], catches=["route-path-prefix"],
       intents=["AccessMode", "AccessRule", "HTTPRouteGroup"])
def test_route_path_exact(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/exact-echo", "team-b/echo", ("team-a/client",),
                   (HTTPMatch(path_regex="/echo"),))]))
    verdict.touch(echo(target, "team-b"))
    a = client(target, "team-a")
    exact = send(target, a, "http://echo.team-b/echo", N)
    ok = [verdict.exact("/echo allowed", all_ok(exact), summary(exact))]
    for path in ("/echo/more", "/echoes", "/ech", "/ECHO", "/Echo"):
        r = send(target, a, f"http://echo.team-b{path}", N)
        ok.append(verdict.exact(f"{path} denied", all_denied(r), denial_evidence(r)))
    assert all(ok), verdict.lines


@check("access-source-exact-identity", "a rule whose source is team-a's client admits that "
       "identity only: another service account of the same namespace (team-a's echo) is "
       "denied in the same window", features=["access-control"],
       catches=["source-namespace-wide"], intents=["AccessMode", "AccessRule"])
def test_source_is_one_identity(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/allow-team-a-client", "team-b/echo", ("team-a/client",))]))
    verdict.touch(echo(target, "team-b"))
    named = send(target, client(target, "team-a"), ECHO_B, N)
    neighbour = send(target, echo(target, "team-a"), ECHO_B, N)
    ok = [verdict.exact("team-a/client allowed", all_ok(named), summary(named)),
          verdict.exact("team-a/echo (same namespace, other service account) denied",
                        all_denied(neighbour), denial_evidence(neighbour))]
    assert all(ok), verdict.lines


@check("access-route-header-exact", "a rule requiring header x-team: blue allows exactly that "
       "value: a longer value, a shorter one, another case and no header are denied",
       features=["access-control", "access-control-routes"],
       catches=["route-header-prefix"], intents=["AccessMode", "AccessRule", "HTTPRouteGroup"])
def test_route_header_exact(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/blue-echo", "team-b/echo", ("team-a/client",),
                   (HTTPMatch(path_regex="/echo", headers=(("x-team", "blue"),)),))]))
    verdict.touch(echo(target, "team-b"))
    a = client(target, "team-a")
    exact = send(target, a, ECHO_B, N, headers={"x-team": "blue"})
    ok = [verdict.exact("x-team blue allowed", all_ok(exact), summary(exact))]
    for value in ("blue-green", "blu", "Blue", None):
        r = send(target, a, ECHO_B, N, headers={"x-team": value} if value else None)
        ok.append(verdict.exact(f"x-team {value or '(absent)'} denied", all_denied(r),
                                denial_evidence(r)))
    assert all(ok), verdict.lines


@check("access-route-method-exact", "a rule for GET /echo allows exactly the method GET "
       "(methods are case-sensitive, RFC 9110 9.1): get, Get, a longer or shorter method "
       "(GETX, GE), HEAD and methods not listed (POST, DELETE) are denied, over HTTP/2 "
       "(which carries any method token to the rule) and HTTP/1.1",
       features=["access-control", "access-control-routes", "protocol-http2"],
       catches=["route-method-case", "authz-open"],
       intents=["AccessMode", "AccessRule", "HTTPRouteGroup"])
def test_route_method_exact(target, mesh, verdict):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", namespace="team-b"),
        AccessRule("team-b/get-only", "team-b/echo", ("team-a/client",),
                   (HTTPMatch(path_regex="/echo", methods=("GET",)),))]))
    verdict.touch(echo(target, "team-b"))
    a = client(target, "team-a")
    ports = proto.service_ports(target, "team-b", "echo")
    ok: list[bool] = []
    # HTTP/1.1 parsers in proxies refuse a method outside the registered ones (400)
    # before any rule is consulted; HTTP/2 carries any token, so the wrong-case and
    # extension methods are judged there, where only the rule can refuse them.
    for protocol, methods in (("http2", ("get", "Get", "GETX", "GE", "HEAD", "POST",
                                          "DELETE")),
                              ("http", ("HEAD", "POST", "DELETE"))):
        url = proto.url(protocol, "echo.team-b", ports[protocol].port)
        get = send(target, a, url, N, protocol=protocol)
        ok.append(verdict.exact(f"{protocol}: GET allowed", all_ok(get), summary(get)))
        for method in methods:
            r = send(target, a, url, N, protocol=protocol, method=method)
            ok.append(verdict.exact(f"{protocol}: {method} denied", all_denied(r),
                                    denial_evidence(r)))
    assert all(ok), verdict.lines
