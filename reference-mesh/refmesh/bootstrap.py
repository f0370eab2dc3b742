"""A sidecar's Envoy bootstrap and command line.

Everything the harness or the mesh talks to Envoy over is a Unix socket
(``pipe`` address): ADS to the control plane, SDS to the pod's agent and
the admin interface. So the control channel never crosses the pod network
that the tests measure, and works the same inside any network namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

XDS_CLUSTER = "xds-grpc"
SDS_CLUSTER = "sds-grpc"
_H2 = {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
}


def _pipe_cluster(name: str, path: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": _H2,
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": path}}}}]}],
        },
    }


def sds_config() -> dict[str, Any]:
    """ConfigSource for the agent's SDS (used by the xDS builders for every TLS context)."""
    return {
        "api_config_source": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": SDS_CLUSTER}}],
        },
        "resource_api_version": "V3",
    }


def ads_config_source() -> dict[str, Any]:
    return {"ads": {}, "resource_api_version": "V3"}


@dataclass(frozen=True)
class SidecarPaths:
    """Where one sidecar's sockets live (host paths; the pod netns does not matter for pipes)."""

    ads_socket: str
    sds_socket: str
    admin_socket: str


def bootstrap(node_id: str, paths: SidecarPaths, cluster: str = "",
              metadata: dict[str, str] | None = None,
              static_listeners: list[dict[str, Any]] | None = None,
              static_clusters: list[dict[str, Any]] | None = None,
              dynamic: bool = True) -> dict[str, Any]:
    """The bootstrap dict for node ``node_id`` ("ns/pod").

    ``dynamic=False`` plus ``static_*`` gives a fully static config, which the
    unit tests use to validate generated resources offline.
    """
    b: dict[str, Any] = {
        "node": {"id": node_id, "cluster": cluster or node_id.replace("/", "."),
                 "metadata": dict(metadata or {})},
        "admin": {"address": {"pipe": {"path": paths.admin_socket}}},
        "static_resources": {
            "listeners": list(static_listeners or []),
            "clusters": [_pipe_cluster(XDS_CLUSTER, paths.ads_socket),
                         _pipe_cluster(SDS_CLUSTER, paths.sds_socket),
                         *(static_clusters or [])],
        },
    }
    if dynamic:
        b["dynamic_resources"] = {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
                "set_node_on_first_message_only": True,
            },
            "cds_config": ads_config_source(),
            "lds_config": ads_config_source(),
        }
    return b


@dataclass
class EnvoyCommand:
    """Envoy's argv: always --disable-hot-restart (else /dev/shm leaks), explicit concurrency."""

    binary: str
    config_path: str
    concurrency: int = 1
    log_level: str = "warning"
    drain_time_s: int = 1
    extra: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        return [self.binary, "-c", self.config_path, "--disable-hot-restart",
                "--concurrency", str(self.concurrency), "--log-level", self.log_level,
                "--drain-time-s", str(self.drain_time_s), *self.extra]


def as_uid(argv: list[str], uid: int) -> list[str]:
    """Prefix ``argv`` to run as ``uid`` (no passwd entry needed): the pod's proxy uid."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv]


def write_bootstrap(path: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as JSON (Envoy reads JSON as YAML), readable by the proxy uid."""
    import json

    path.write_text(json.dumps(config, indent=1))
    path.chmod(0o644)
    return path
