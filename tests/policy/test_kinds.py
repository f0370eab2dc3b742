"""Every kind loads into exactly the intents docs/policy.md promises."""

from __future__ import annotations

import pytest

from meshproof.intent import (AccessMode, AccessRule, Backend, Fault, HTTPMatch, HTTPRoute,
                              MTLSMode, OutlierDetection, Retry, RouteBackend, RouteRule,
                              Timeout, TrafficSplit)
from meshproof.policy import load_files, load_text
from meshproof.targets.model import Registry
from tests.policy.conftest import EXAMPLES

JASON = HTTPMatch(headers=(("end-user", "jason"),))
CANARY = TrafficSplit("bookinfo/reviews", (Backend("reviews-v1", 90), Backend("reviews-v3", 10)))

EXPECTED = {
    "smi-trafficsplit.yaml": [CANARY],
    "smi-httproutegroup.yaml": [],
    "smi-trafficsplit-match.yaml": [
        TrafficSplit("bookinfo/reviews", (Backend("reviews-v3", 100),), JASON)],
    "smi-traffictarget.yaml": [
        AccessMode("smi", "team-b"),
        AccessRule("team-b/team-a-to-echo", "team-b/echo", ("team-a/client",),
                   (HTTPMatch(path_regex="/echo/.*", methods=("GET", "POST")),))],
    "gamma-httproute-match.yaml": [HTTPRoute("bookinfo/reviews-jason", "bookinfo/reviews", (
        RouteRule(matches=(JASON,), backends=(RouteBackend("reviews-v3", 1, 80),)),
        RouteRule(backends=(RouteBackend("reviews", 1, 80),))), 80)],
    "gamma-httproute-split.yaml": [HTTPRoute("bookinfo/reviews-canary", "bookinfo/reviews", (
        RouteRule(backends=(RouteBackend("reviews-v1", 90, 80), RouteBackend("reviews-v3", 10, 80)),
                  timeout_ms=2000),), 80)],
    "accessmode.yaml": [AccessMode("smi", "team-b")],
    "mtlsmode.yaml": [MTLSMode("PERMISSIVE"), MTLSMode("STRICT", "bookinfo"),
                      MTLSMode("PERMISSIVE", "bookinfo", "reviews-v1")],
    "retry.yaml": [Retry("bookinfo/ratings", 2, 300, ("5xx", "reset"))],
    "timeout.yaml": [Timeout("bookinfo/details", 500)],
    "faultinjection.yaml": [Fault("bookinfo/ratings", abort_status=503, abort_percent=50.0,
                                  delay_ms=100, delay_percent=100.0,
                                  match=HTTPMatch(methods=("GET",)))],
    "outlierdetection.yaml": [OutlierDetection("bookinfo/reviews", consecutive_5xx=3,
                                               interval_ms=1000, base_ejection_ms=10000,
                                               max_ejection_percent=50)],
}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_loads_into_expected_intents(name: str, registry: Registry) -> None:
    assert load_files([EXAMPLES / name], registry=registry) == EXPECTED[name]
    # Without a registry the same intents (the registry only adds checks).
    assert load_files([EXAMPLES / name]) == EXPECTED[name]


def test_all_examples_as_one_set_conflict_on_reviews_split(registry: Registry) -> None:
    """Loaded together, the reviews splits clash: one split per service, and not
    both a split and an HTTPRoute."""
    from meshproof.policy import PolicyError

    with pytest.raises(PolicyError, match="routes bookinfo/reviews like the HTTPRoute"):
        load_files(sorted(EXAMPLES.glob("*.yaml")), registry=registry)


def test_retries_n_means_n_plus_one_attempts_field() -> None:
    (r,) = load_text("""
apiVersion: policy.meshproof.dev/v1alpha1
kind: Retry
metadata: {name: r, namespace: bookinfo}
spec: {service: ratings, retries: 0}
""")
    assert r == Retry("bookinfo/ratings", 0, 0, ("5xx",))


def test_gamma_path_types_stay_literal() -> None:
    """Exact and PathPrefix stay literal (the mesh uses its own path matchers)."""
    def route(path: str) -> HTTPMatch:
        (r,) = load_text(f"""
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: bookinfo}}
spec:
  parentRefs: [{{name: reviews}}]
  rules:
  - matches: [{{path: {path}, method: POST}}]
    backendRefs: [{{name: reviews-v2, weight: 3}}, {{name: reviews-v3}}]
""")
        (rule,) = r.rules
        assert [(b.service, b.weight) for b in rule.backends] == [("reviews-v2", 3),
                                                                  ("reviews-v3", 1)]
        assert rule.matches[0].methods == ("POST",)
        return rule.matches[0]

    assert route("{type: PathPrefix, value: /api.v1/}") == HTTPMatch(
        path_prefix="/api.v1", methods=("POST",))
    assert route("{type: Exact, value: /a+b}").path_exact == "/a+b"
    assert route("{type: RegularExpression, value: '/r/[0-9]+'}").path_regex == "/r/[0-9]+"
    assert not route("{type: PathPrefix, value: /}").has_path


def test_split_and_target_may_precede_their_route_group_across_files(tmp_path) -> None:
    """Groups are read first, so order and file boundaries do not matter."""
    target = EXAMPLES / "smi-traffictarget.yaml"
    text = target.read_text()
    group_doc = text.split("---\n")[1]
    rest = tmp_path / "target.yaml"
    rest.write_text(text.replace(group_doc, ""))
    groups = tmp_path / "groups.yaml"
    groups.write_text(group_doc)
    assert load_files([rest, groups]) == EXPECTED["smi-traffictarget.yaml"]


def test_traffictarget_without_matches_takes_the_whole_group() -> None:
    intents = load_text("""
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: g, namespace: team-b}
spec:
  matches:
  - {name: a, pathRegex: /a}
  - {name: b, methods: ["*"], headers: {X-Team: a}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: team-b}
spec:
  destination: {kind: ServiceAccount, name: echo}
  rules: [{kind: HTTPRouteGroup, name: g}]
  sources: [{kind: ServiceAccount, name: client, namespace: team-a},
            {kind: ServiceAccount, name: client}]
""")
    assert intents == [AccessRule("team-b/t", "team-b/echo", ("team-a/client", "team-b/client"),
                                  (HTTPMatch(path_regex="/a"),
                                   HTTPMatch(headers=(("x-team", "a"),))))]


def test_empty_documents_are_skipped_but_counted() -> None:
    from meshproof.policy import PolicyError

    text = "---\n# only a comment\n---\n" + (EXAMPLES / "timeout.yaml").read_text()
    assert load_text(text) == EXPECTED["timeout.yaml"]
    with pytest.raises(PolicyError) as err:
        load_text(text.replace("500ms", "500"))
    assert err.value.problems[0].location.document == 2  # the first --- opens document 1
    text = (EXAMPLES / "accessmode.yaml").read_text() + "---\n---\n" + text
    with pytest.raises(PolicyError) as err:
        load_text(text.replace("500ms", "500"))
    assert err.value.problems[0].location.document == 5
