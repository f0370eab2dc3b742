"""Every intent's translation to per-sidecar xDS: shape checks, then the real Envoy validates it."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshproof.intent import AccessMode, Fault, HTTPMatch, Policy, Retry, Timeout
from refmesh.bootstrap import SidecarPaths
from refmesh.xds import build_sidecar, names, proto
from refmesh.xds.routes import DEFAULT_RETRY
from refmesh.xds.static import static_bootstrap

from .helpers import envoy_validate as validate
from .policy_fixture import ECHO_RULE, MATCHED_SPLIT, SPLIT, full_policy, policy_registry

REG = policy_registry()
PODS = {p.key: p for p in REG.pods}
CALLER = PODS["team-a/client-0"]
ECHO_B = PODS["team-b/echo-0"]
REVIEWS_RT = "reviews.bookinfo.svc.cluster.local:80"
ECHO_RT = "echo.team-b.svc.cluster.local:80"


def routes_of(res, rt: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return res.routes[rt]["virtual_hosts"][0]["routes"]


def inbound_filters(res) -> list[str]:  # type: ignore[no-untyped-def]
    chain = res.listeners[names.VIRTUAL_INBOUND]["filter_chains"][0]
    return [f["name"] for f in chain["filters"][0]["typed_config"]["http_filters"]]


def test_matched_split_goes_first_and_the_rest_to_the_root_service() -> None:
    rs = routes_of(build_sidecar(REG, Policy(splits=(MATCHED_SPLIT,)), CALLER), REVIEWS_RT)
    assert [r["name"] for r in rs] == ["split", "default"]
    assert rs[0]["match"] == {"prefix": "/", "headers": [
        {"name": "end-user", "string_match": {"exact": "jason"}}]}
    assert rs[0]["route"]["weighted_clusters"]["clusters"] == [
        {"name": "outbound|80||reviews-v2.bookinfo.svc.cluster.local", "weight": 100}]
    assert rs[1]["match"] == {"prefix": "/"}
    assert rs[1]["route"]["cluster"] == "outbound|80||reviews.bookinfo.svc.cluster.local"


def test_path_regex_and_methods_become_safe_regex_matches() -> None:
    split = MATCHED_SPLIT.__class__(MATCHED_SPLIT.service, MATCHED_SPLIT.backends,
                                    match=HTTPMatch(path_regex="/reviews/[0-9]+",
                                                    methods=("POST", "GET")))
    rs = routes_of(build_sidecar(REG, Policy(splits=(split,)), CALLER), REVIEWS_RT)
    assert rs[0]["match"] == {"safe_regex": {"regex": "/reviews/[0-9]+"}, "headers": [
        {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|POST"}}}]}


def test_unmatched_split_is_one_weighted_route() -> None:
    rs = routes_of(build_sidecar(REG, Policy(splits=(SPLIT,)), CALLER), REVIEWS_RT)
    assert len(rs) == 1 and "weighted_clusters" in rs[0]["route"]


def test_retry_replaces_the_default_retry() -> None:
    assert routes_of(build_sidecar(REG, Policy(), CALLER), ECHO_RT)[0]["route"][
        "retry_policy"] == DEFAULT_RETRY
    pol = Policy(retries=(Retry("team-b/echo", 2, per_try_timeout_ms=250),))
    rp = routes_of(build_sidecar(REG, pol, CALLER), ECHO_RT)[0]["route"]["retry_policy"]
    assert rp == {"retry_on": "5xx", "num_retries": 2, "per_try_timeout": "0.250s"}
    # Other services keep the default.
    assert routes_of(build_sidecar(REG, pol, CALLER), REVIEWS_RT)[0]["route"][
        "retry_policy"] == DEFAULT_RETRY


def test_timeout_is_a_route_timeout() -> None:
    pol = Policy(timeouts=(Timeout("team-b/echo", 300),))
    assert routes_of(build_sidecar(REG, pol, CALLER), ECHO_RT)[0]["route"]["timeout"] == "0.300s"
    assert "timeout" not in routes_of(build_sidecar(REG, pol, CALLER), REVIEWS_RT)[0]["route"]


def test_fault_is_per_route_with_million_denominator_and_only_on_its_match() -> None:
    res = build_sidecar(REG, full_policy(), CALLER)
    rs = routes_of(res, REVIEWS_RT)
    assert [r["name"] for r in rs] == ["fault-split", "split", "fault-default", "default"]
    fault = rs[0]["typed_per_filter_config"]["envoy.filters.http.fault"]
    assert fault["abort"] == {"http_status": 418,
                              "percentage": {"numerator": 125000, "denominator": "MILLION"}}
    assert "typed_per_filter_config" not in rs[1] and "typed_per_filter_config" not in rs[3]
    assert rs[0]["match"]["safe_regex"] == {"regex": "/reviews/.*"}
    assert {"name": "end-user", "string_match": {"exact": "jason"}} in rs[0]["match"]["headers"]
    # Other services: no fault; every outbound HCM carries the (empty) fault filter.
    assert "typed_per_filter_config" not in routes_of(res, ECHO_RT)[0]
    hcm = res.listeners["198.19.0.11_80"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.fault",
                                                         "envoy.filters.http.router"]


def test_delay_fault_without_match_rides_every_route() -> None:
    pol = Policy(faults=(Fault("team-b/echo", delay_ms=200, delay_percent=100.0),))
    r = routes_of(build_sidecar(REG, pol, CALLER), ECHO_RT)
    assert len(r) == 1
    assert r[0]["typed_per_filter_config"]["envoy.filters.http.fault"]["delay"] == {
        "fixed_delay": "0.200s", "percentage": {"numerator": 1000000, "denominator": "MILLION"}}


def test_outlier_detection_on_the_services_cluster_only() -> None:
    res = build_sidecar(REG, full_policy(), CALLER)
    od = res.clusters["outbound|80||reviews.bookinfo.svc.cluster.local"]["outlier_detection"]
    assert od["consecutive_5xx"] == 3 and od["base_ejection_time"] == "30.000s"
    assert "outlier_detection" not in res.clusters["outbound|80||echo.team-b.svc.cluster.local"]


def inbound_rbac(res) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    """The inbound route's RBAC rules (None: nothing enforced)."""
    route = res.routes["inbound|9080"]["virtual_hosts"][0]["routes"][0]
    cfg = route.get("typed_per_filter_config", {}).get("envoy.filters.http.rbac")
    return None if cfg is None else cfg["rbac"]["rules"]


def test_inbound_hcm_always_has_an_empty_rbac_filter_and_routes_by_rds() -> None:
    res = build_sidecar(REG, Policy(), ECHO_B)
    assert inbound_filters(res) == ["envoy.filters.http.rbac", "envoy.filters.http.router"]
    chain = res.listeners[names.VIRTUAL_INBOUND]["filter_chains"][0]
    hcm = chain["filters"][0]["typed_config"]
    assert hcm["http_filters"][0]["typed_config"] == {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"}
    assert hcm["rds"]["route_config_name"] == "inbound|9080"
    assert inbound_rbac(res) is None


def test_smi_access_mode_puts_rbac_on_the_destinations_inbound_route_only() -> None:
    pol = full_policy()
    rbac = inbound_rbac(build_sidecar(REG, pol, ECHO_B))
    assert rbac is not None and rbac["action"] == "ALLOW"
    p = rbac["policies"][ECHO_RULE.name]
    assert p["principals"] == [{"authenticated": {"principal_name": {
        "exact": "spiffe://cluster.local/ns/team-a/sa/client"}}}]
    assert p["permissions"] == [{"and_rules": {"rules": [
        {"url_path": {"path": {"safe_regex": {"regex": "/echo"}}}},
        {"header": {"name": ":method", "string_match": {"safe_regex": {"regex": "GET"}}}}]}}]
    # The caller's namespace (team-a) is permissive: no RBAC rules there.
    assert inbound_rbac(build_sidecar(REG, pol, CALLER)) is None


def test_smi_without_rules_denies_all_and_namespace_beats_mesh() -> None:
    pol = Policy(access_modes=(AccessMode("smi"), AccessMode("permissive", "team-a")))
    assert inbound_rbac(build_sidecar(REG, pol, ECHO_B)) == {"action": "ALLOW"}  # allows nothing
    assert inbound_rbac(build_sidecar(REG, pol, CALLER)) is None


def test_rule_without_routes_allows_any_request() -> None:
    rule = ECHO_RULE.__class__("team-b/any", "team-b/echo", ("team-a/client",))
    pol = Policy(access_modes=(AccessMode("smi", "team-b"),), access_rules=(rule,))
    rules = inbound_rbac(build_sidecar(REG, pol, ECHO_B))
    assert rules is not None and rules["policies"]["team-b/any"]["permissions"] == [{"any": True}]


@pytest.mark.parametrize("pod", sorted(PODS))
def test_every_resource_parses_as_its_proto(pod: str) -> None:
    res = build_sidecar(REG, full_policy(), PODS[pod])
    for type_url, (_, attr) in proto.TYPES.items():
        for d in getattr(res, attr).values():
            proto.to_any(type_url, d)


@pytest.mark.parametrize("pod", ["team-a/client-0", "team-b/echo-0"])
def test_envoy_validates_the_full_policy(envoy_bin: str, sockdir: Path, pod: str) -> None:
    res = build_sidecar(REG, full_policy(), PODS[pod])
    paths = SidecarPaths(str(sockdir / "ads"), str(sockdir / "sds"), str(sockdir / "admin"))
    validate(envoy_bin, static_bootstrap(res, pod, paths), sockdir / "static.json")
