"""Each xDS defect changes only what it names.

For a registry and policy that exercise every intent, the generated xDS of
every sidecar is built with and without the defect, flattened to
``type/resource-name/field/.../leaf`` paths, and diffed. The diff must be
non-empty (the defect does something) and every differing path must match
the patterns below, written here (not imported from the code under test)
as the specification of each defect.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from meshproof.mesh import defects as registry
from meshproof.targets.model import Registry
from refmesh.bootstrap import SidecarPaths
from refmesh.state import MeshState
from refmesh.xds import SidecarOptions, build_sidecar
from refmesh.xds.defects import XDS_DEFECTS
from refmesh.xds.static import static_bootstrap

from .policy_fixture import SPLIT, full_policy, policy_registry, route_policy
from .helpers import envoy_validate as validate

REG = policy_registry()
_ROUTE = r"^routes/[^/]+/virtual_hosts/0/routes/\d+/"
_REVIEWS = r"^routes/reviews\.bookinfo\.svc\.cluster\.local:\d+/virtual_hosts/0/routes/"
_VALIDATION = (r"transport_socket/typed_config/common_tls_context/combined_validation_context/"
               r"default_validation_context/")

#: defect -> (policy that exercises it, regexes every changed path must match)
SPEC: dict[str, tuple[str, list[str]]] = {
    # Chains: every port's mTLS chain first, then the plaintext ones; the fixture's team-b
    # echo pod (STRICT) has four ports: 9080, 9081, 7070, 9090 (chains 0-3).
    "plaintext-accepted": ("matched", [r"^listeners/virtualInbound/filter_chains/[1-7]/"]),
    "plaintext-other-port": ("matched", [r"^listeners/virtualInbound/filter_chains/[4-6]/"]),
    "tcp-authz-open": ("matched", [r"^listeners/virtualInbound/filter_chains/3/filters/"]),
    "h2-downgraded": ("matched", [
        r"^clusters/outbound\|(81|7070)\|\|[^/]+/(typed_extension_protocol_options/|"
        r"transport_socket_matches/0/transport_socket/typed_config/common_tls_context/"
        r"alpn_protocols/)",
        r"^clusters/inbound\|(9081|7070)\|\|/typed_extension_protocol_options/"]),
    "alpn-h2-unoffered": ("matched", [
        r"^listeners/virtualInbound/filter_chains/\d+/transport_socket/typed_config/"
        r"common_tls_context/alpn_protocols/"]),
    "tcp-upstream-plaintext": ("matched", [
        r"^clusters/outbound\|9090\|\|[^/]+/transport_socket_matches/0/transport_socket/"]),
    "xfcc-h2-unset": ("matched", [
        r"^listeners/virtualInbound/filter_chains/[12]/filters/0/typed_config/"
        r"(forward_client_cert_details|set_current_client_cert_details/)"]),
    "weights-ignored": ("weighted", [_ROUTE + r"route/weighted_clusters/clusters/\d+/(name|weight)$"]),
    "match-ignored": ("matched", [_ROUTE + r"match/"]),
    "retries-dropped": ("matched", [_ROUTE + r"route/retry_policy/"]),
    "timeouts-dropped": ("matched", [_ROUTE + r"route/timeout$"]),
    "authz-open": ("matched", [r"^routes/inbound\|\d+/virtual_hosts/0/routes/0/"
                               r"typed_per_filter_config/envoy\.filters\.http\.rbac/"]),
    "server-identity-unchecked": ("matched", [
        r"^clusters/[^/]+/transport_socket_matches/0/" + _VALIDATION
        + r"match_typed_subject_alt_names/"]),
    "expired-cert-served": ("matched", [
        r"^clusters/[^/]+/transport_socket_matches/0/" + _VALIDATION
        + r"allow_expired_certificate$",
        r"^listeners/virtualInbound/filter_chains/\d+/" + _VALIDATION
        + r"allow_expired_certificate$"]),
    "workload-strict-ignored": ("boundaries", [r"^listeners/virtualInbound/filter_chains/1/"]),
    "deny-only-with-rules": ("boundaries", [r"^routes/inbound\|\d+/virtual_hosts/0/routes/0/"
                                            r"typed_per_filter_config/envoy\.filters\.http\.rbac/"]),
    "route-path-prefix": ("matched", [r"^routes/inbound\|\d+/virtual_hosts/0/routes/0/"
                                      r"typed_per_filter_config/envoy\.filters\.http\.rbac/"
                                      r"rbac/rules/policies/"]),
    "query-match-ignored": ("routes", [_ROUTE + r"match/query_parameters/"]),
    "header-modifier-dropped": ("routes", [_ROUTE + r"request_headers_to_(add|remove)/"]),
    "response-header-modifier-dropped": ("routes", [_ROUTE + r"response_headers_to_add/"]),
    "backend-filter-dropped": ("routes", [
        _ROUTE + r"route/weighted_clusters/clusters/\d+/(request|response)_headers_to_add/"]),
    "redirect-status-wrong": ("routes", [_ROUTE + r"redirect/response_code$"]),
    "redirect-scheme-dropped": ("routes", [_ROUTE + r"redirect/scheme_redirect$"]),
    "redirect-host-dropped": ("routes", [_ROUTE + r"redirect/host_redirect$"]),
    "redirect-port-dropped": ("routes", [_ROUTE + r"redirect/port_redirect$"]),
    "redirect-path-dropped": ("routes", [_ROUTE + r"redirect/(path_redirect|regex_rewrite/.*)$"]),
    "rewrite-dropped": ("routes", [_ROUTE + r"route/(regex_rewrite/.*|host_rewrite_literal)$"]),
    "path-prefix-not-segment": ("routes", [_ROUTE + r"match/(path_separated_prefix|prefix)$"]),
    # Whole entries of the reviews route config (and only it) move or change.
    "precedence-rule-order": ("routes", [_REVIEWS]),
    "precedence-reversed": ("routes", [_REVIEWS]),
    # Entries of the reviews route config (where the GRPCRoute is) move, only they.
    "grpc-precedence-as-http": ("routes", [_REVIEWS]),
    # Only new virtual hosts (index >= 1) in the outbound route configs.
    "route-by-host": ("routes", [r"^routes/[^/|]+\.svc\.cluster\.local:\d+/virtual_hosts/[1-9]\d*/"]),
    "consumer-route-leaks": ("routes", [_REVIEWS]),
    "producer-route-dropped": ("routes", [_REVIEWS]),
    "port-ignored": ("routes", [_REVIEWS]),
    "namespace-mode-ignored": ("mesh-wide", [r"^listeners/virtualInbound/filter_chains/1/"]),
    "source-namespace-wide": ("matched", [r"^routes/inbound\|\d+/virtual_hosts/0/routes/0/"
                                          r"typed_per_filter_config/envoy\.filters\.http\.rbac/"
                                          r"rbac/rules/policies/.+/principals/\d+/"
                                          r"authenticated/principal_name/(exact|prefix)$"]),
    "route-header-prefix": ("header-rule", [r"^routes/inbound\|\d+/virtual_hosts/0/routes/0/"
                                            r"typed_per_filter_config/envoy\.filters\.http\.rbac/"
                                            r"rbac/rules/policies/.+/permissions/\d+/.*header/"
                                            r"string_match/(exact|prefix)$"]),
    "route-method-case": ("matched", [r"^routes/inbound\|\d+/virtual_hosts/0/routes/0/"
                                      r"typed_per_filter_config/envoy\.filters\.http\.rbac/"
                                      r"rbac/rules/policies/.+/permissions/\d+/.*header/"
                                      r"string_match/safe_regex/regex$"]),
    "split-header-prefix": ("matched", [_REVIEWS + r"\d+/match/headers/\d+/string_match/"
                                         r"(exact|prefix)$"]),
    "timeout-per-try": ("matched", [_ROUTE + r"route/(timeout|retry_policy/per_try_timeout)$"]),
    # Under mesh STRICT, pods of namespaces without a mode of their own gain plaintext.
    "mesh-mode-ignored": ("mesh-wide", [r"^listeners/virtualInbound/filter_chains/\d+/"]),
    "peer-chain-unverified": ("matched", [r"^listeners/virtualInbound/filter_chains/\d+/"
                                          + _VALIDATION + r"trust_chain_verification$"]),
    "abort-percent-ignored": ("matched", [_ROUTE + r"typed_per_filter_config/"
                                          r"envoy\.filters\.http\.fault/abort/percentage/"
                                          r"numerator$"]),
    "xfcc-forwarded": ("matched", [r"^listeners/virtualInbound/filter_chains/\d+/filters/0/"
                                   r"typed_config/forward_client_cert_details$"]),
    "outlier-not-programmed": ("matched", [r"^clusters/[^/]+/outlier_detection/"]),
    # Only the EDS of the Services' ports after their first (80): 81, 7070, 9090.
    "endpoints-first-port-only": ("matched", [
        r"^endpoints/outbound\|(81|7070|9090)\|\|[^/]+/endpoints/0/"]),
    "dead-endpoint-kept": ("notready", [r"^endpoints/[^/]+/endpoints/0/lb_endpoints/\d+/"]),
    "fault-delay-dropped": ("delay-fault", [
        _ROUTE + r"typed_per_filter_config/envoy\.filters\.http\.fault/(@type|delay/.*)$"]),
    "fault-delay-percent-wrong": ("delay-fault", [
        _ROUTE + r"typed_per_filter_config/envoy\.filters\.http\.fault/delay/percentage/"
        r"numerator$"]),
    "slow-proxy": ("matched", [_ROUTE + r"typed_per_filter_config/envoy\.filters\.http\.fault/"
                               r"(@type|delay/.*)$"]),
}


def _policy(which: str):  # type: ignore[no-untyped-def]
    from meshproof.intent import Backend, TrafficSplit

    if which == "boundaries":  # workload STRICT in a PERMISSIVE namespace; smi without rules
        import dataclasses

        from meshproof.intent import AccessMode, MTLSMode

        base = full_policy()
        return dataclasses.replace(
            base, mtls=base.mtls + (MTLSMode("PERMISSIVE", "bookinfo"),
                                    MTLSMode("STRICT", "bookinfo", "reviews-v1")),
            access_modes=base.access_modes + (AccessMode("smi", "bookinfo"),))
    if which == "routes":
        return route_policy()
    if which == "header-rule":  # an access rule that requires an exact header value
        import dataclasses

        from meshproof.intent import AccessRule, HTTPMatch

        base = full_policy()
        return dataclasses.replace(base, access_rules=base.access_rules + (AccessRule(
            "team-b/header-to-echo", "team-b/echo", ("team-c/client",),
            (HTTPMatch(path_regex="/echo", headers=(("x-team", "blue"),)),)),))
    if which == "mesh-wide":  # mesh STRICT with a namespace PERMISSIVE under it
        import dataclasses

        from meshproof.intent import MTLSMode

        base = full_policy()
        return dataclasses.replace(base, mtls=(MTLSMode("STRICT"),
                                               MTLSMode("PERMISSIVE", "bookinfo")))
    if which == "delay-fault":  # a delay fault beside the fixture's abort-only one
        import dataclasses

        from meshproof.intent import Fault

        base = full_policy()
        return dataclasses.replace(base, faults=base.faults + (
            Fault("team-b/echo", delay_ms=1000, delay_percent=50),))
    if which == "weighted":  # a 0-weight backend too: "ignored" weights give it traffic
        return full_policy(TrafficSplit(SPLIT.service, (Backend("reviews-v1", 90),
                                                        Backend("reviews-v2", 0))))
    return full_policy()


def _registry(which: str) -> Registry:
    """The registry; ``notready``: one of team-b/echo's two pods is not ready (killed)."""
    if which != "notready":
        return REG
    import dataclasses

    echo = next(p for p in REG.pods if p.key == "team-b/echo-0")
    dead = dataclasses.replace(echo, name="echo-1", ip="198.18.0.33", ready=False)
    return Registry(services=list(REG.services), pods=[*REG.pods, dead])


def flatten(x: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested dicts/lists by slash path (empty containers are leaves)."""
    if isinstance(x, dict) and x:
        out: dict[str, Any] = {}
        for k, v in x.items():
            out.update(flatten(v, f"{prefix}{k}/"))
        return out
    if isinstance(x, list) and x:
        out = {}
        for i, v in enumerate(x):
            out.update(flatten(v, f"{prefix}{i}/"))
        return out
    return {prefix.rstrip("/"): json.dumps(x, sort_keys=True)}


def sidecar_paths(reg: Registry, policy: Any, defects: tuple[str, ...]) -> dict[str, Any]:
    opts = SidecarOptions(defects=defects)
    out: dict[str, Any] = {}
    for pod in reg.pods:
        res = build_sidecar(reg, policy, pod, opts)
        for kind in ("listeners", "clusters", "endpoints", "routes"):
            for path, v in flatten(getattr(res, kind)).items():
                out[f"{pod.key}|{kind}/{path}"] = v
    return out


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Changed leaf paths; an empty container that gained children counts as its children."""
    changed = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    return sorted(k for k in changed
                  if not (a.get(k, b.get(k)) in ("{}", "[]")
                          and any(c.startswith(k + "/") for c in changed)))


def test_every_xds_defect_has_a_spec_and_is_registered() -> None:
    assert set(SPEC) == XDS_DEFECTS
    assert XDS_DEFECTS <= registry.IMPLEMENTED <= set(registry.DEFECTS)


@pytest.mark.parametrize("defect", sorted(SPEC))
def test_defect_changes_only_its_own_paths(defect: str) -> None:
    which, allowed = SPEC[defect]
    policy = _policy(which)
    reg = _registry(which)
    changed = diff(sidecar_paths(reg, policy, ()), sidecar_paths(reg, policy, (defect,)))
    assert changed, f"{defect} changed nothing: it would prove nothing"
    stray = [p for p in changed
             if not any(re.search(rx, p.split("|", 1)[1]) for rx in allowed)]
    assert not stray, f"{defect} changed paths outside its own: {stray[:10]}"


def test_slow_proxy_delays_every_outbound_route_and_keeps_a_faults_delay() -> None:
    from meshproof.intent import Fault, Policy
    from refmesh.xds.defects import SLOW_PROXY_DELAY_MS

    pol = Policy(faults=(Fault("team-b/echo", delay_ms=200, delay_percent=50.0),))
    pod = next(p for p in REG.pods if p.key == "team-a/client-0")
    res = build_sidecar(REG, pol, pod, SidecarOptions(defects=("slow-proxy",)))
    for name, rc in res.routes.items():
        if name.startswith("inbound|"):
            continue  # outbound routes only
        for r in rc["virtual_hosts"][0]["routes"]:
            delay = r["typed_per_filter_config"]["envoy.filters.http.fault"]["delay"]
            want = "0.200s" if name.startswith("echo.team-b") else f"0.{SLOW_PROXY_DELAY_MS:03d}s"
            assert delay["fixed_delay"] == want


@pytest.mark.parametrize("defect", sorted(SPEC))
def test_envoy_accepts_the_defective_config(envoy_bin: str, sockdir: Path, defect: str) -> None:
    """A defect must be served, not NACKed: a NACKed defect would leave the healthy config."""
    policy = _policy(SPEC[defect][0])
    paths = SidecarPaths(str(sockdir / "ads"), str(sockdir / "sds"), str(sockdir / "admin"))
    for key in ("team-a/client-0", "team-b/echo-0"):
        pod = next(p for p in REG.pods if p.key == key)
        res = build_sidecar(REG, policy, pod, SidecarOptions(defects=(defect,)))
        validate(envoy_bin, static_bootstrap(res, key, paths), sockdir / "static.json")


def test_defects_travel_in_the_state_options() -> None:
    s = MeshState().merged({"options": {"defects": ["weights-ignored"]}})
    assert s.options.defects == ("weights-ignored",)
    assert MeshState.from_dict(json.loads(json.dumps(s.to_dict()))).options == s.options
    assert s.content()["options"]["defects"] == ["weights-ignored"]
