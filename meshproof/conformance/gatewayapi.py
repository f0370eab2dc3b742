"""Gateway API's mesh conformance tests (v1.6) and the meshproof check for each.

The report (meshproof/report/conformance.py) groups these the way Gateway
API's own ConformanceReport does: profiles MESH-HTTP and MESH-GRPC, each
split into core and extended (a test is extended when it needs an extended
feature), provisional tests listed when they pass. Names are Gateway API's
ShortNames, so a meshproof report reads side by side with a vendor's
published one. ``check`` is "" where meshproof has no check yet: the test is
then reported as skipped, never silently absent.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "v1.6.0"
CHANNEL = "standard"
MESH_HTTP = "MESH-HTTP"
MESH_GRPC = "MESH-GRPC"


@dataclass(frozen=True)
class GatewayTest:
    name: str
    check: str
    profile: str = MESH_HTTP
    #: Gateway API features beyond Mesh + HTTPRoute/GRPCRoute (extended ones).
    extended_features: tuple[str, ...] = ()
    provisional: bool = False

    @property
    def extended(self) -> bool:
        return bool(self.extended_features)


TESTS: tuple[GatewayTest, ...] = (
    GatewayTest("MeshBasic", "gw-mesh-basic"),
    GatewayTest("MeshTrafficSplit", "gw-mesh-traffic-split"),
    GatewayTest("MeshHTTPRouteWeight", "gw-mesh-httproute-weight"),
    GatewayTest("MeshHTTPRouteMatching", "gw-mesh-httproute-matching"),
    GatewayTest("MeshHTTPRouteSimpleSameNamespace", "gw-mesh-httproute-simple-same-namespace"),
    GatewayTest("MeshHTTPRouteRedirectHostAndStatus", "gw-mesh-redirect-host-and-status"),
    GatewayTest("MeshHTTPRouteRequestHeaderModifier", "gw-mesh-request-header-modifier"),
    GatewayTest("MeshHTTPRouteSchemeRedirect", "gw-mesh-redirect-scheme",
                extended_features=("MeshHTTPRouteSchemeRedirect",)),
    GatewayTest("MeshHTTPRouteRedirectPort", "gw-mesh-redirect-port",
                extended_features=("MeshHTTPRouteRedirectPort",)),
    GatewayTest("MeshHTTPRouteRedirectPath", "gw-mesh-redirect-path",
                extended_features=("MeshHTTPRouteRedirectPath",)),
    GatewayTest("MeshHTTPRoute303Redirect", "gw-mesh-303-redirect",
                extended_features=("HTTPRoute303RedirectStatusCode",), provisional=True),
    GatewayTest("MeshHTTPRoute307Redirect", "gw-mesh-307-redirect",
                extended_features=("HTTPRoute307RedirectStatusCode",), provisional=True),
    GatewayTest("MeshHTTPRoute308Redirect", "gw-mesh-308-redirect",
                extended_features=("HTTPRoute308RedirectStatusCode",), provisional=True),
    GatewayTest("MeshHTTPRouteBackendRequestHeaderModifier",
                "gw-mesh-backend-request-header-modifier",
                extended_features=("MeshHTTPRouteBackendRequestHeaderModification",)),
    GatewayTest("MeshHTTPRouteRewritePath", "gw-mesh-rewrite-path",
                extended_features=("MeshHTTPRouteRewritePath",)),
    GatewayTest("MeshHTTPRouteQueryParamMatching", "gw-mesh-query-param-matching",
                extended_features=("MeshHTTPRouteQueryParamMatching",)),
    GatewayTest("MeshHTTPRouteNamedRule", "gw-mesh-named-rule",
                extended_features=("MeshHTTPRouteNamedRouteRule",), provisional=True),
    GatewayTest("MeshFrontend", "gw-mesh-frontend",
                extended_features=("HTTPRouteResponseHeaderModification",)),
    GatewayTest("MeshFrontendHostname", "gw-mesh-frontend-hostname",
                extended_features=("MeshClusterIPMatching",
                                   "HTTPRouteResponseHeaderModification")),
    GatewayTest("MeshPorts", "gw-mesh-ports", extended_features=("HTTPRouteParentRefPort",
                                                    "HTTPRouteResponseHeaderModification")),
    GatewayTest("MeshConsumerRoute", "gw-mesh-consumer-route",
                extended_features=("MeshConsumerRoute", "HTTPRouteResponseHeaderModification")),
    GatewayTest("MeshGRPCRouteWeight", "gw-mesh-grpcroute-weight", profile=MESH_GRPC),
)

BY_CHECK: dict[str, GatewayTest] = {t.check: t for t in TESTS if t.check}
