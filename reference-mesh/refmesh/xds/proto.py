"""Dicts -> Envoy protobufs (json_format.ParseDict), so the dicts stay the single source."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message

# Importing the extension protos registers their types, so "@type" in dicts resolves.
from envoy.extensions.filters.http.fault.v3 import fault_pb2  # noqa: F401
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2  # noqa: F401
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

#: xDS type URL -> (proto class, SidecarResources attribute), in the order ADS should push.
TYPES: dict[str, tuple[type[Message], str]] = {
    CLUSTER: (cluster_pb2.Cluster, "clusters"),
    ENDPOINT: (endpoint_pb2.ClusterLoadAssignment, "endpoints"),
    LISTENER: (listener_pb2.Listener, "listeners"),
    ROUTE: (route_pb2.RouteConfiguration, "routes"),
}
SHORT = {CLUSTER: "cds", ENDPOINT: "eds", LISTENER: "lds", ROUTE: "rds"}


def to_proto(type_url: str, d: dict[str, Any]) -> Message:
    cls, _ = TYPES[type_url]
    return json_format.ParseDict(d, cls())


def to_any(type_url: str, d: dict[str, Any]) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(to_proto(type_url, d))
    return a
