"""A registry and a policy that exercise every intent, for translation and defect tests."""

from __future__ import annotations

from meshproof.intent import (AccessMode, AccessRule, Fault, HTTPMatch, MTLSMode, OutlierDetection,
                              Policy, Retry, Timeout, TrafficSplit)
from meshproof.targets.model import FIXTURE_APP_PORTS, Pod, Registry, Service, ServiceSpec
from meshproof.topology import ECHO_PORTS

from .registry_fixture import small_registry


def policy_registry() -> Registry:
    """small_registry plus team-a (client) and team-b (echo, on every protocol's port as in
    the fixture topology) for access control and protocols."""
    reg = small_registry()
    reg.services.append(Service(ServiceSpec("team-b", "echo", {"app": "echo"},
                                            extra_ports=ECHO_PORTS), "198.19.0.30"))
    reg.pods += [
        Pod("team-a", "client-0", "client", "198.18.0.31", {"app": "client"}, "client", True,
            ready=True, proxy_uid=1337),
        Pod("team-b", "echo-0", "echo", "198.18.0.32", {"app": "echo"}, "echo", True,
            ready=True, proxy_uid=1337, ports=FIXTURE_APP_PORTS),
    ]
    return reg


JASON = HTTPMatch(headers=(("end-user", "jason"),))
SPLIT = TrafficSplit("bookinfo/reviews", (("reviews-v1", 90), ("reviews-v2", 10)))
MATCHED_SPLIT = TrafficSplit("bookinfo/reviews", (("reviews-v1", 0), ("reviews-v2", 100)),
                             match=JASON)
ECHO_RULE = AccessRule("team-b/a-to-echo", "team-b/echo", ("team-a/client",),
                       (HTTPMatch(path_regex="/echo", methods=("GET",)),))


def full_policy(split: TrafficSplit = MATCHED_SPLIT) -> Policy:
    """Every intent kind at least once (STRICT somewhere so plaintext-accepted shows)."""
    return Policy(
        mtls=(MTLSMode("STRICT", "team-b"),),
        splits=(split,),
        access_modes=(AccessMode("smi", "team-b"),),
        access_rules=(ECHO_RULE,),
        retries=(Retry("team-b/echo", 2, per_try_timeout_ms=250, retry_on=("5xx", "reset")),),
        timeouts=(Timeout("team-b/echo", 300), Timeout("bookinfo/reviews", 1500)),
        faults=(Fault("bookinfo/reviews", abort_status=418, abort_percent=12.5,
                      match=HTTPMatch(path_regex="/reviews/.*")),),
        outliers=(OutlierDetection("bookinfo/reviews", consecutive_5xx=3),),
    )


def route_policy() -> Policy:
    """full_policy with HTTPRoutes on bookinfo/reviews instead of its split: every
    route translation (matches, filters, redirects, rewrite, consumer and port routes),
    rules declared out of precedence order so an order bug shows."""
    from meshproof.intent import (HeaderModifier, HTTPRoute, Redirect, Rewrite,
                                  RouteBackend, RouteRule)

    set_x = HeaderModifier(set=(("x-header-set", "v"),))
    main = HTTPRoute("bookinfo/main", "bookinfo/reviews", (
        RouteRule("prefix", (HTTPMatch(path_prefix="/reviews", methods=("GET",),
                                       headers=(("end-user", "jason"),)),),
                  (RouteBackend("reviews-v2", 90), RouteBackend("reviews-v1", 10)),
                  rewrite=Rewrite("example.org", path_prefix="/r")),
        RouteRule("exact", (HTTPMatch(path_exact="/reviews/1", query=(("a", "1"),)),),
                  (RouteBackend("reviews-v1", 1, request_headers=set_x,
                                response_headers=set_x),),
                  request_headers=HeaderModifier((("x-s", "1"),), (("x-a", "2"),), ("x-r",)),
                  response_headers=set_x),
        RouteRule("redirect", (HTTPMatch(path_prefix="/old"),),
                  redirect=Redirect("https", "example.org", 8443, path_prefix="/new",
                                    status=301)),
        RouteRule("full", (HTTPMatch(path_exact="/full"),),
                  redirect=Redirect(path_full="/x", status=308)),
        RouteRule("rest", (), (RouteBackend("reviews", 1),), timeout_ms=700),
    ))
    consumer = HTTPRoute("team-a/consumer", "bookinfo/reviews",
                         (RouteRule(response_headers=set_x),))
    other_port = HTTPRoute("bookinfo/port81", "bookinfo/reviews",
                           (RouteRule(response_headers=set_x),), port=81)
    from meshproof.matching import GRPCMethod

    # A GRPCRoute: a method-only rule written before a service-only one (GRPCRoute's
    # precedence puts the service first; HTTPRoute's path rules would not).
    grpc = HTTPRoute("bookinfo/grpc", "bookinfo/reviews", (
        RouteRule("method", (HTTPMatch(path_regex="/[^/]+/Get",
                                       grpc=GRPCMethod(method="Get")),),
                  (RouteBackend("reviews-v2", 1),)),
        RouteRule("service", (HTTPMatch(path_prefix="/pkg.Svc",
                                        grpc=GRPCMethod(service="pkg.Svc")),),
                  (RouteBackend("reviews-v1", 1),)),
    ), grpc=True)
    import dataclasses

    return dataclasses.replace(full_policy(), splits=(),
                               routes=(main, consumer, other_port, grpc))
