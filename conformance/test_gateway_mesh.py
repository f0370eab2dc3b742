"""Conformance: one check per Gateway API v1.6 mesh conformance test, plus the
precedence cases Gateway API's tests leave out (both orders of writing).

Each check loads its manifest from fixtures/gateway-api/ (Gateway API's own
test manifest re-created with this topology's names: echo -> reviews,
echo-v1/-v2 -> reviews-v1/-v2, gateway-conformance-mesh -> bookinfo, the
consumer namespace -> team-a) exactly as a user's file would be loaded, and
judges Gateway API's cases (meshproof/conformance/expect.py: every request
after "programmed", never "eventually"). The Gateway API test each check
mirrors is in its description and in meshproof/conformance/gatewayapi.py.
"""

from __future__ import annotations

import pytest

from meshproof import paths
from meshproof.conformance import protocols as proto
from meshproof.conformance.check import check
from meshproof.conformance.expect import Case, judge_cases
from meshproof.conformance.splits import judge_weights
from meshproof.policy.loader import load_files
from meshproof.targets.model import APP_PORT, GRPC_PORT, GRPC_UNARY

pytestmark = [pytest.mark.mesh]

MESH = paths.FIXTURES / "gateway-api" / "mesh"
PRECEDENCE = paths.FIXTURES / "gateway-api" / "precedence"


def manifest(name: str) -> list:  # type: ignore[type-arg]
    return load_files([MESH / f"{name}.yaml"])


def redirect(path: str, status: int = 302, **location: str) -> Case:
    return Case(path, path, status=status, backend=None, location=location)


#: Requests per version Service and port in MeshBasic. A mesh resolving a version Service
#: by its app label alone answers from the right one of the three versions with p = 1/3
#: per request: all 9 right has p = (1/3)^9 = 5.1e-5 <= 1e-4. (A correct mesh never
#: answers from another version: its false-fail rate is 0.)
BASIC_COUNT = 9
#: The request each Service port protocol gets in MeshBasic (tcp: no HTTP route to judge).
BASIC_PATHS = {"http": "/", "http2": "/echo", "grpc": GRPC_UNARY}


def mesh_basic_cases(target) -> list[Case]:  # type: ignore[no-untyped-def]
    """Gateway API's echo, echo-v1 and echo-v2 (reviews, reviews-v1..v3 here), each on
    every port it declares, each answered by its own version."""
    cases = []
    for name in ("reviews", "reviews-v1", "reviews-v2", "reviews-v3"):
        version = name.partition("-")[2]
        for p in proto.service_ports(target, "bookinfo", name).values():
            if p.protocol not in BASIC_PATHS:
                raise AssertionError(f"MeshBasic has no request for a {p.protocol} port "
                                     f"(bookinfo/{name}:{p.port})")
            cases.append(Case(f"{name} {p.protocol}", BASIC_PATHS[p.protocol],
                              host=f"{name}:{p.port}", backend=version,
                              method="POST" if p.protocol == "grpc" else "GET",
                              protocol=p.protocol, count=BASIC_COUNT if version else 3))
    return cases


@check("gw-mesh-basic", "MeshBasic: a meshed client reaches a Service and each version "
       "Service, on every port they declare, with no route attached (each version "
       "Service answered by its own version only: 9 requests each)",
       features=["gamma-httproute", "protocol-grpc"],
       catches=["endpoints-first-port-only", "h2-downgraded"], intents=[])
def test_mesh_basic(target, mesh, verdict):
    judge_cases(target, mesh, verdict, [], mesh_basic_cases(target))


@check("gw-mesh-traffic-split", "MeshTrafficSplit: rules on two paths split traffic by "
       "path between two backends", features=["gamma-httproute", "httproute-matching"],
       catches=["match-ignored"], intents=["HTTPRoute"])
def test_mesh_traffic_split_by_path_match(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("mesh-split"), [
        Case("v1", "/v1", backend="v1"), Case("v2", "/v2", backend="v2")])


@check("gw-mesh-httproute-weight", "MeshHTTPRouteWeight: backends weighted 70/30 get "
       "70/30 within 10 points (binomial design, both error rates <= 1e-4)",
       features=["gamma-httproute", "traffic-split"], catches=["weights-ignored"],
       intents=["HTTPRoute"])
def test_mesh_httproute_weight(target, mesh, verdict):
    judge_weights(target, mesh, verdict, manifest("httproute-weight"),
                  {"v1": 70, "v2": 30, "v3": 0})


MATCHING = [
    Case("root", "/", backend="v1"), Case("example", "/example", backend="v1"),
    Case("root version one", "/", headers={"version": "one"}, backend="v1"),
    Case("v2", "/v2", backend="v2"), Case("v2 example", "/v2/example", backend="v2"),
    Case("version two", "/", headers={"version": "two"}, backend="v2"),
    Case("v2 slash", "/v2/", backend="v2"),
    Case("not a segment of /v2", "/v2example", backend="v1"),
    Case("v2 not at the start", "/foo/v2/example", backend="v1"),
]


@check("gw-mesh-httproute-matching", "MeshHTTPRouteMatching: path prefixes (whole segments "
       "only) and a header pick the backend", features=["gamma-httproute",
                                                         "httproute-matching"],
       catches=["match-ignored", "path-prefix-not-segment"], intents=["HTTPRoute"])
def test_mesh_httproute_matching(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("httproute-matching"), MATCHING)


@check("gw-mesh-httproute-simple-same-namespace", "MeshHTTPRouteSimpleSameNamespace: a "
       "route in the Service's namespace sends every request to its backend",
       features=["gamma-httproute"], catches=["producer-route-dropped"],
       intents=["HTTPRoute"])
def test_mesh_simple_same_namespace(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("httproute-simple-same-namespace"),
                [Case(f"request {i}", f"/{i}", backend="v1") for i in range(3)])


@check("gw-mesh-redirect-host-and-status", "MeshHTTPRouteRedirectHostAndStatus: a hostname "
       "redirect answers 302 (default) or the given 301 with the new host",
       features=["gamma-httproute", "httproute-redirect"],
       catches=["redirect-host-dropped", "redirect-status-wrong"], intents=["HTTPRoute"])
def test_mesh_redirect_host_and_status(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("httproute-redirect-host-and-status"), [
        redirect("/hostname-redirect", host="example.org"),
        redirect("/host-and-status", 301, host="example.org")])


@check("gw-mesh-redirect-scheme", "MeshHTTPRouteSchemeRedirect: a scheme redirect to https "
       "(with host and status)", features=["gamma-httproute", "httproute-redirect-scheme"],
       catches=["redirect-scheme-dropped", "redirect-status-wrong"], intents=["HTTPRoute"])
def test_mesh_redirect_scheme(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("httproute-redirect-scheme"), [
        redirect("/scheme", scheme="https"),
        redirect("/scheme-and-host", scheme="https", host="example.org"),
        redirect("/scheme-and-status", 301, scheme="https"),
        redirect("/scheme-and-host-and-status", 302, scheme="https", host="example.org")])


@check("gw-mesh-redirect-port", "MeshHTTPRouteRedirectPort: a port redirect (with host and "
       "status)", features=["gamma-httproute", "httproute-redirect-port"],
       catches=["redirect-port-dropped", "redirect-status-wrong"], intents=["HTTPRoute"])
def test_mesh_redirect_port(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("httproute-redirect-port"), [
        redirect("/port", port="8083"),
        redirect("/port-and-host", host="example.org", port="8083"),
        redirect("/port-and-status", 301, port="8083"),
        redirect("/port-and-host-and-status", 302, host="example.org", port="8083")])


@check("gw-mesh-redirect-path", "MeshHTTPRouteRedirectPath: ReplacePrefixMatch and "
       "ReplaceFullPath redirects, with host and 301/307/308",
       features=["gamma-httproute", "httproute-redirect-path"],
       catches=["redirect-path-dropped", "redirect-status-wrong"], intents=["HTTPRoute"])
def test_mesh_redirect_path(target, mesh, verdict):
    rp, rf = "/replacement-prefix", "/replacement-full"
    judge_cases(target, mesh, verdict, manifest("httproute-redirect-path"), [
        Case("prefix", "/original-prefix/lemon", status=302, backend=None,
             location={"path": rp + "/lemon"}),
        Case("full", "/full/path/original", status=302, backend=None,
             location={"path": "/full-path-replacement"}),
        Case("prefix and host", "/path-and-host", status=302, backend=None,
             location={"host": "example.org", "path": rp}),
        Case("prefix and 301", "/path-and-status", status=301, backend=None,
             location={"path": rp}),
        Case("prefix and 307", "/path-and-temporary", status=307, backend=None,
             location={"path": rp}),
        Case("prefix and 308", "/path-and-permanent", status=308, backend=None,
             location={"path": rp}),
        Case("full and host", "/full-path-and-host", status=302, backend=None,
             location={"host": "example.org", "path": rf}),
        Case("full and 301", "/full-path-and-status", status=301, backend=None,
             location={"path": rf}),
        Case("full and 307", "/full-path-and-temporary", status=307, backend=None,
             location={"path": rf}),
        Case("full and 308", "/full-path-and-permanent", status=308, backend=None,
             location={"path": rf})])


def _status_check(code: int) -> None:
    @check(f"gw-mesh-{code}-redirect", f"MeshHTTPRoute{code}Redirect: a redirect with "
           f"statusCode {code} answers {code}, path kept",
           features=["gamma-httproute", "httproute-redirect-303-307-308"],
           catches=["redirect-status-wrong"], intents=["HTTPRoute"])
    def test(target, mesh, verdict):  # type: ignore[no-untyped-def]
        judge_cases(target, mesh, verdict, manifest(f"httproute-{code}-redirect"),
                    [redirect("/redirect", code)])

    globals()[f"test_mesh_{code}_redirect"] = test


for _code in (303, 307, 308):
    _status_check(_code)


def modifier_cases() -> list[Case]:
    """Gateway API's header modifier cases (the same for a rule and a backendRef)."""
    other = {"Some-Other-Header": "val"}
    return [
        Case("set", "/set", headers=other, backend="v1", request_headers={
            **other, "X-Header-Set": "set-overwrites-values"}),
        Case("set overwrites", "/set", headers={**other, "X-Header-Set": "some-other-value"},
             backend="v1", request_headers={**other, "X-Header-Set": "set-overwrites-values"}),
        Case("add", "/add", headers=other, backend="v1", request_headers={
            **other, "X-Header-Add": "add-appends-values"}),
        Case("add appends", "/add", headers={**other, "X-Header-Add": "some-other-value"},
             backend="v1", request_headers={
                 **other, "X-Header-Add": "some-other-value,add-appends-values"}),
        Case("remove", "/remove", headers={"X-Header-Remove": "val"}, backend="v1",
             absent_request_headers=("X-Header-Remove",)),
        Case("multiple", "/multiple", headers={
            "X-Header-Set-2": "set-val-2", "X-Header-Add-2": "add-val-2",
            "X-Header-Remove-2": "remove-val-2", "Another-Header": "another-header-val"},
             backend="v1", request_headers={
                 "X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2",
                 "X-Header-Add-1": "header-add-1", "X-Header-Add-2": "add-val-2,header-add-2",
                 "X-Header-Add-3": "header-add-3", "Another-Header": "another-header-val"},
             absent_request_headers=("X-Header-Remove-1", "X-Header-Remove-2")),
        Case("case-insensitive names", "/case-insensitivity", headers={
            "x-header-set": "original-val-set", "x-header-add": "original-val-add",
            "x-header-remove": "original-val-remove", "Another-Header": "another-header-val"},
             backend="v1", request_headers={
                 "X-Header-Set": "header-set", "X-Header-Add": "original-val-add,header-add",
                 "Another-Header": "another-header-val"},
             absent_request_headers=("X-Header-Remove",)),
    ]


@check("gw-mesh-request-header-modifier", "MeshHTTPRouteRequestHeaderModifier: a rule's "
       "filter sets, appends and removes request headers (names ignore case)",
       features=["gamma-httproute", "httproute-header-modifier"],
       catches=["header-modifier-dropped"], intents=["HTTPRoute"])
def test_mesh_request_header_modifier(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("httproute-request-header-modifier"),
                modifier_cases())


@check("gw-mesh-backend-request-header-modifier", "MeshHTTPRouteBackendRequestHeaderModifier: "
       "the same filters on a backendRef", features=["gamma-httproute",
                                                     "httproute-backend-header-modifier"],
       catches=["backend-filter-dropped"], intents=["HTTPRoute"])
def test_mesh_backend_request_header_modifier(target, mesh, verdict):
    judge_cases(target, mesh, verdict,
                manifest("httproute-request-header-modifier-backend"), modifier_cases())


@check("gw-mesh-rewrite-path", "MeshHTTPRouteRewritePath: prefix and full-path rewrites "
       "reach the backend rewritten (with header filters)",
       features=["gamma-httproute", "httproute-rewrite", "httproute-header-modifier"],
       catches=["rewrite-dropped"], intents=["HTTPRoute"])
def test_mesh_rewrite_path(target, mesh, verdict):
    sent = {"X-Header-Remove": "remove-val", "X-Header-Add-Append": "append-val-1",
            "X-Header-Set": "set-val"}
    seen = {"X-Header-Add": "header-val-1", "X-Header-Add-Append": "append-val-1,header-val-2",
            "X-Header-Set": "set-overwrites-values"}
    judge_cases(target, mesh, verdict, manifest("httproute-rewrite-path"), [
        Case("prefix", "/prefix/one/two", backend="v1", request_path="/one/two"),
        Case("strip prefix", "/strip-prefix/three", backend="v1", request_path="/three"),
        Case("strip whole prefix", "/strip-prefix", backend="v1", request_path="/"),
        Case("full path", "/full/one/two", backend="v1", request_path="/one"),
        Case("query kept", "/full/one/two?a=b", backend="v1", request_path="/one?a=b"),
        Case("full path and headers", "/full/rewrite-path-and-modify-headers/test",
             headers=sent, backend="v1", request_path="/test", request_headers=seen,
             absent_request_headers=("X-Header-Remove",)),
        Case("prefix and headers", "/prefix/rewrite-path-and-modify-headers/one",
             headers=sent, backend="v1", request_path="/prefix/one", request_headers=seen,
             absent_request_headers=("X-Header-Remove",))])


@check("gw-mesh-query-param-matching", "MeshHTTPRouteQueryParamMatching: exact query "
       "parameters, ANDed with path and header, ORed across matches; no match -> 404",
       features=["gamma-httproute", "httproute-query-matching"],
       catches=["query-match-ignored", "precedence-rule-order"], intents=["HTTPRoute"])
def test_mesh_query_param_matching(target, mesh, verdict):
    one, three = {"version": "one"}, {"version": "three"}
    judge_cases(target, mesh, verdict, manifest("httproute-query-param-matching"), [
        Case("whale", "/?animal=whale", backend="v1"),
        Case("dolphin", "/?animal=dolphin", backend="v2"),
        Case("whale and more", "/?animal=whale&otherparam=irrelevant", backend="v1"),
        Case("dolphin and more", "/?animal=dolphin&color=yellow", backend="v2"),
        Case("other parameter", "/?color=blue", status=404, backend=None),
        Case("other value", "/?animal=dog", status=404, backend=None),
        Case("not a prefix of the value", "/?animal=whaledolphin", status=404, backend=None),
        Case("no query", "/", status=404, backend=None),
        Case("path and query", "/path1?animal=whale", backend="v1"),
        Case("header beats query alone", "/?animal=whale", headers=one, backend="v2"),
        Case("first of ORed matches", "/path3?animal=shark", backend="v1"),
        Case("second of ORed matches", "/path4?animal=kraken", headers=three, backend="v1"),
        Case("query without its path", "/?animal=shark", status=404, backend=None),
        Case("without its header", "/path4?animal=kraken", status=404, backend=None),
        Case("more query matches win", "/path5?animal=hydra", backend="v1")])


@check("gw-mesh-named-rule", "MeshHTTPRouteNamedRule: a named rule routes like any other",
       features=["gamma-httproute", "httproute-named-rule"], catches=["match-ignored"],
       intents=["HTTPRoute"])
def test_mesh_named_rule_match(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("httproute-named-rule"), [
        Case("named", "/named", backend="v1", request_path="/named"),
        Case("unnamed", "/unnamed", backend="v2", request_path="/unnamed")])


SET = {"X-Header-Set": "set"}


@check("gw-mesh-frontend", "MeshFrontend: a route applies to requests to its Service, not "
       "to requests to the Service's pod by IP",
       features=["gamma-httproute", "httproute-response-header-modifier"],
       catches=["response-header-modifier-dropped"], intents=["HTTPRoute"])
def test_mesh_frontend(target, mesh, verdict):
    pod = target.pod("bookinfo", "reviews-v2")
    judge_cases(target, mesh, verdict, manifest("mesh-frontend"), [
        Case("to the Service", "/", host="reviews-v2", backend="v2", response_headers=SET),
        Case("to the pod IP", "/", host=f"{pod.ip}:{APP_PORT}", backend="v2",
             absent_response_headers=("X-Header-Set",))])


@check("gw-mesh-frontend-hostname", "MeshFrontendHostname: the route follows the Service "
       "IP the request is sent to, not its Host header",
       features=["gamma-httproute", "httproute-response-header-modifier",
                 "mesh-cluster-ip-matching"],
       catches=["route-by-host", "response-header-modifier-dropped"], intents=["HTTPRoute"])
def test_mesh_frontend_hostname(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("mesh-frontend"), [
        Case("Service with another Host", "/", host="reviews-v2",
             headers={"Host": "reviews-v1"}, backend="v2", response_headers=SET),
        Case("other Service with its Host", "/", host="reviews-v1",
             headers={"Host": "reviews-v2"}, backend="v1",
             absent_response_headers=("X-Header-Set",))])


@check("gw-mesh-consumer-route", "MeshConsumerRoute: a route in the caller's namespace "
       "applies to that namespace's requests only",
       features=["gamma-httproute", "httproute-response-header-modifier",
                 "mesh-consumer-route"],
       catches=["consumer-route-leaks", "response-header-modifier-dropped"],
       intents=["HTTPRoute"])
def test_mesh_consumer_route(target, mesh, verdict):
    judge_cases(target, mesh, verdict, manifest("mesh-consumer-route"), [
        Case("from the route's namespace", "/", host="reviews-v1.bookinfo",
             source=("team-a", "client"), backend="v1", response_headers=SET),
        Case("from the Service's namespace", "/", host="reviews-v1.bookinfo",
             backend="v1", absent_response_headers=("X-Header-Set",)),
        Case("from a third namespace", "/", host="reviews-v1.bookinfo",
             source=("team-c", "client"), backend="v1",
             absent_response_headers=("X-Header-Set",))])


@check("gw-mesh-ports", "MeshPorts: a route with a parentRef port applies to that port of "
       "its Service only; a route without one to every port",
       features=["gamma-httproute", "httproute-response-header-modifier",
                 "httproute-parentref-port", "protocol-http2"],
       catches=["port-ignored", "response-header-modifier-dropped",
                "endpoints-first-port-only"], intents=["HTTPRoute"])
def test_mesh_ports(target, mesh, verdict):
    b, c = (proto.service_ports(target, ns, "echo") for ns in ("team-b", "team-c"))
    a = ("team-a", "client")
    judge_cases(target, mesh, verdict, manifest("mesh-ports"), [
        Case("the parentRef's port", "/echo", host=f"echo.team-b:{b['http'].port}",
             source=a, response_headers={"X-Header-Set": "v1"}),
        Case("another port of that Service", "/echo", host=f"echo.team-b:{b['http2'].port}",
             source=a, protocol="http2", absent_response_headers=("X-Header-Set",)),
        Case("no port: the HTTP port", "/echo", host=f"echo.team-c:{c['http'].port}",
             source=a, response_headers={"X-Header-Set": "v2"}),
        Case("no port: another port", "/echo", host=f"echo.team-c:{c['http2'].port}",
             source=a, protocol="http2", response_headers={"X-Header-Set": "v2"})])


@check("gw-mesh-grpcroute-weight", "MeshGRPCRouteWeight: a GRPCRoute's backends weighted "
       "70/30 get 70/30 of gRPC calls within 10 points (binomial design, both error rates "
       "<= 1e-4), per call over pooled HTTP/2 connections",
       features=["gamma-httproute", "grpcroute", "protocol-grpc", "traffic-split"],
       catches=["weights-ignored", "endpoints-first-port-only"], intents=["GRPCRoute"])
def test_mesh_grpcroute_weight(target, mesh, verdict):
    port = proto.service_ports(target, "bookinfo", "reviews")["grpc"].port
    judge_weights(target, mesh, verdict, manifest("grpcroute-weight"),
                  {"v1": 70, "v2": 30, "v3": 0}, url=f"http://reviews:{port}{GRPC_UNARY}",
                  protocol="grpc", fresh=False)


PRECEDENCE_CASES = [
    Case("exact over prefix", "/p/exact", backend="v2"),
    Case("prefix without the exact", "/p/other", backend="v1"),
    Case("longer prefix", "/p/long/x", backend="v3"),
    Case("method match", "/m", method="POST", backend="v2"),
    Case("other method", "/m", backend="v1"),
    Case("more headers", "/h", headers={"a": "1", "b": "1"}, backend="v2"),
    Case("fewer headers", "/h", headers={"a": "1"}, backend="v1"),
    Case("more query parameters", "/q?a=1&b=1", backend="v2"),
    Case("fewer query parameters", "/q?a=1", backend="v1"),
    Case("longer prefix over method, headers and query", "/pm/long?a=1",
         headers={"a": "1"}, backend="v3"),
    Case("shorter prefix with all of them", "/pm/x?a=1", headers={"a": "1"}, backend="v1"),
]


@check("gw-precedence-general-first", "HTTPRoute precedence with the general rules written "
       "first: exact, longer prefix, method, more headers, more query parameters win",
       features=["gamma-httproute", "httproute-matching", "httproute-query-matching"],
       catches=["precedence-rule-order"], intents=["HTTPRoute"])
def test_precedence_general_first(target, mesh, verdict):
    judge_cases(target, mesh, verdict, load_files([PRECEDENCE / "general-first.yaml"]),
                PRECEDENCE_CASES)


@check("gw-precedence-specific-first", "HTTPRoute precedence with the specific rules written "
       "first: the same winners (written order must not decide either way)",
       features=["gamma-httproute", "httproute-matching", "httproute-query-matching"],
       catches=["precedence-reversed"], intents=["HTTPRoute"])
def test_precedence_specific_first(target, mesh, verdict):
    judge_cases(target, mesh, verdict, load_files([PRECEDENCE / "specific-first.yaml"]),
                PRECEDENCE_CASES)


def grpc_call(name: str, method: str, backend: str, **headers: str) -> Case:
    """A unary call of ``method`` (``/pkg.Svc/Method``) to the reviews gRPC port."""
    return Case(name, method, host=f"reviews:{GRPC_PORT}", headers=headers, method="POST",
                backend=backend, protocol="grpc")


GRPC_PRECEDENCE_CASES = [
    grpc_call("service over method", "/step1.Svc/Call", "v1"),
    grpc_call("method alone", "/other.Svc/Call", "v2"),
    grpc_call("longer service (exact over a shorter pattern)", "/step2.LongService/Get", "v2"),
    grpc_call("shorter service pattern alone", "/step2.Other/Get", "v1"),
    grpc_call("same service: method over none", "/step3.Svc/Get", "v2"),
    grpc_call("same service, other method", "/step3.Svc/Put", "v1"),
    grpc_call("same service and method: more headers", "/step4.Svc/Get", "v2", **{"x-step": "1"}),
    grpc_call("without the header", "/step4.Svc/Get", "v1"),
    grpc_call("service over method and header", "/step5.Svc/Put", "v1", **{"x-step": "1"}),
    grpc_call("method and header alone", "/other.Svc/Put", "v2", **{"x-step": "1"}),
    grpc_call("same service: method over header", "/step6.Svc/Get", "v2", **{"x-step": "1"}),
    grpc_call("service and header over method and header", "/step6.Svc/Put", "v1",
              **{"x-step": "1"}),
    grpc_call("longer method pattern", "/step7.Svc/GetAll", "v2"),
    grpc_call("shorter method pattern alone", "/step7.Svc/Go", "v1"),
]


@check("gw-precedence-grpc-general-first", "GRPCRoute precedence with the general rules "
       "written first: more characters of service, then of method, then more headers win "
       "(a service-only match over a method-only one)",
       features=["gamma-httproute", "grpcroute", "protocol-grpc"],
       catches=["grpc-precedence-as-http", "precedence-rule-order", "match-ignored",
                "producer-route-dropped", "h2-downgraded", "endpoints-first-port-only"],
       intents=["GRPCRoute"])
def test_grpc_precedence_general_first(target, mesh, verdict):
    judge_cases(target, mesh, verdict, load_files([PRECEDENCE / "grpc-general-first.yaml"]),
                GRPC_PRECEDENCE_CASES)


@check("gw-precedence-grpc-specific-first", "GRPCRoute precedence with the specific rules "
       "written first: the same winners (written order must not decide either way)",
       features=["gamma-httproute", "grpcroute", "protocol-grpc"],
       catches=["grpc-precedence-as-http", "precedence-reversed", "precedence-rule-order",
                "match-ignored", "producer-route-dropped", "h2-downgraded",
                "endpoints-first-port-only"],
       intents=["GRPCRoute"])
def test_grpc_precedence_specific_first(target, mesh, verdict):
    judge_cases(target, mesh, verdict, load_files([PRECEDENCE / "grpc-specific-first.yaml"]),
                GRPC_PRECEDENCE_CASES)
