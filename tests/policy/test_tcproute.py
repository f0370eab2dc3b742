"""SMI TCPRoute: a TrafficTarget rule allowing whole connections (access at L4).

A TrafficTarget whose rules reference a TCPRoute becomes an AccessRule with
no route conditions (connections on any port, whatever they carry); one with
only HTTPRouteGroup rules keeps its HTTP routes (and so allows nothing on a
TCP port). The black-box renderer writes an unconditional rule that way, and
the round trip is the identity.
"""

from __future__ import annotations

import pytest

from meshproof.intent import AccessRule, HTTPMatch
from meshproof.policy import PolicyError, load_text
from meshproof.policy.render import render

TCP = """apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: any-tcp, namespace: team-b}
spec: {}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: a-to-echo, namespace: team-b}
spec:
  destination: {kind: ServiceAccount, name: echo, namespace: team-b}
  sources: [{kind: ServiceAccount, name: client, namespace: team-a}]
  rules: [RULES]
"""
GROUP = """---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: get-echo, namespace: team-b}
spec: {matches: [{name: e, pathRegex: /echo, methods: [GET]}]}
"""


def load(rules: str, extra: str = "") -> list:
    return load_text(TCP.replace("RULES", rules) + extra)


def test_a_tcproute_rule_allows_the_whole_connection():
    (rule,) = load("{kind: TCPRoute, name: any-tcp}")
    assert rule == AccessRule("team-b/a-to-echo", "team-b/echo", ("team-a/client",), ())
    # With an HTTP rule beside it, the connection-level rule still subsumes it.
    (rule,) = load("{kind: TCPRoute, name: any-tcp}, {kind: HTTPRouteGroup, name: get-echo}",
                   GROUP)
    assert rule.routes == ()
    (http_only,) = load("{kind: HTTPRouteGroup, name: get-echo}", GROUP)
    assert http_only.routes == (HTTPMatch(path_regex="/echo", methods=("GET",)),)


@pytest.mark.parametrize("text,message", [
    (TCP.replace("RULES", "{kind: TCPRoute, name: nope}"), "TCPRoute team-b/nope is not defined"),
    (TCP.replace("spec: {}", "spec: {matches: {ports: [9090]}}").replace(
        "RULES", "{kind: TCPRoute, name: any-tcp}"), "TCPRoute port matches are not supported"),
    (TCP.replace("RULES", "{kind: TCPRoute, name: any-tcp, matches: [x]}"),
     "a TCPRoute rule has no matches to pick"),
    (TCP.replace("RULES", "{kind: UDPRoute, name: any-tcp}"), "or a TCPRoute"),
])
def test_bad_tcproute_references_are_refused(text, message):
    with pytest.raises(PolicyError) as err:
        load_text(text)
    assert message in str(err.value)


@pytest.mark.parametrize("rule", [
    AccessRule("team-b/any", "team-b/echo", ("team-a/client", "team-c/client")),
    AccessRule("team-b/get", "team-b/echo", ("team-c/client",),
               (HTTPMatch(path_regex="/echo", methods=("GET",)),)),
])
def test_render_round_trip(rule):
    text = render([rule])
    assert ("kind: TCPRoute" in text) is (not rule.routes)
    assert load_text(text) == [rule]
