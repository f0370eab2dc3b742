"""Full HTTPRoute and GRPCRoute: what each field becomes, and the render round trip
the black-box mode relies on (render -> load gives back the same intents)."""

from __future__ import annotations

from meshproof.matching import GRPCMethod
from meshproof.intent import (HeaderModifier, HTTPMatch, HTTPRoute, Redirect, Rewrite,
                              RouteBackend, RouteRule)
from meshproof.policy import load_text
from meshproof.policy.render import render
from meshproof.targets.model import Registry
from tests.refmesh.policy_fixture import route_policy

HEAD = """apiVersion: gateway.networking.k8s.io/v1
kind: {kind}
metadata: {{name: r, namespace: {ns}}}
spec:
  parentRefs: [{{name: reviews, namespace: bookinfo, port: 80}}{more}]
  rules:
"""


def one(rules: str, kind: str = "HTTPRoute", ns: str = "bookinfo", more: str = "",
        registry: Registry | None = None) -> list[HTTPRoute]:
    return load_text(HEAD.format(kind=kind, ns=ns, more=more) + rules,  # type: ignore[return-value]
                     registry=registry)


def test_rules_matches_and_filters_map_field_by_field(registry: Registry) -> None:
    (r,) = one("""
  - name: v2
    matches:
    - path: {type: PathPrefix, value: /v2/}
    - headers: [{name: Version, value: two}]
      queryParams: [{name: animal, value: whale}]
      method: GET
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Header-Set, value: s}]
        add: [{name: X-Header-Add, value: a}]
        remove: [X-Header-Remove]
    - {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-R, value: r}]}}
    - type: URLRewrite
      urlRewrite: {hostname: example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    backendRefs:
    - name: reviews-v2
      port: 80
      weight: 3
      filters:
      - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-B, value: b}]}}
    timeouts: {request: 2s}
  - matches: [{path: {type: Exact, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: example.org, port: 8443, statusCode: 308,
                        path: {type: ReplaceFullPath, replaceFullPath: /new}}
""", registry=registry)
    assert r == HTTPRoute("bookinfo/r", "bookinfo/reviews", (
        RouteRule("v2", (HTTPMatch(path_prefix="/v2"),
                         HTTPMatch(methods=("GET",), headers=(("version", "two"),),
                                   query=(("animal", "whale"),))),
                  (RouteBackend("reviews-v2", 3, 80, HeaderModifier((("x-b", "b"),))),),
                  HeaderModifier((("x-header-set", "s"),), (("x-header-add", "a"),),
                                 ("x-header-remove",)),
                  HeaderModifier((("x-r", "r"),)), None,
                  Rewrite("example.org", path_prefix="/"), 2000),
        RouteRule("", (HTTPMatch(path_exact="/old"),),
                  redirect=Redirect("https", "example.org", 8443, path_full="/new",
                                    status=308))), 80)


def test_a_route_in_another_namespace_is_a_consumer_route(registry: Registry) -> None:
    (r,) = one("  - backendRefs: [{name: reviews-v1, namespace: bookinfo}]\n", ns="team-a",
               registry=registry)
    assert r.consumer == "team-a" and r.service == "bookinfo/reviews"
    (p,) = one("  - backendRefs: [{name: reviews-v1}]\n")
    assert p.consumer == ""


def test_grpc_methods_become_http2_paths() -> None:
    (r,) = one("""
  - matches:
    - method: {service: pkg.Echo, method: Ping}
    - method: {service: pkg.Echo}
    - method: {method: Ping}
    - method: {type: RegularExpression, service: 'pkg\\.E.*'}
      headers: [{name: x-tag, value: t}]
    backendRefs: [{name: reviews-v1, weight: 7}]
""", kind="GRPCRoute")
    assert r.grpc and r.rules[0].matches == (
        HTTPMatch(path_exact="/pkg.Echo/Ping", grpc=GRPCMethod("Exact", "pkg.Echo", "Ping")),
        HTTPMatch(path_prefix="/pkg.Echo", grpc=GRPCMethod(service="pkg.Echo")),
        HTTPMatch(path_regex="/[^/]+/Ping", grpc=GRPCMethod(method="Ping")),
        HTTPMatch(path_regex="/(?:pkg\\.E.*)/(?:[^/]+)", headers=(("x-tag", "t"),),
                  grpc=GRPCMethod("RegularExpression", "pkg\\.E.*")))
    assert r.rules[0].backends == (RouteBackend("reviews-v1", 7),)


def test_render_then_load_gives_back_the_same_routes() -> None:
    routes = [r for r in route_policy().routes if r.port != 81]  # 81: not a fixture port
    assert load_text(render(routes)) == routes


def test_one_route_on_two_parents_renders_as_one_document() -> None:
    routes = one("  - backendRefs: [{name: reviews-v1}]\n",
                 more=", {name: reviews-v1, namespace: bookinfo}")
    assert len(routes) == 2
    text = render(routes)
    assert text.count("kind: HTTPRoute") == 1
    assert load_text(text) == routes
