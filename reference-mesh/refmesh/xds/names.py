"""Resource names, Istio style, so config dumps read like an Istio sidecar's."""

from __future__ import annotations

from meshproof.targets.model import APP_PORT, Service

PASSTHROUGH = "PassthroughCluster"
VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"


def outbound_cluster(svc: Service, port: int | None = None) -> str:
    """Istio's outbound cluster name; ``port`` defaults to the service's primary port."""
    return f"outbound|{port or svc.spec.port}||{svc.spec.fqdn}"


def inbound_cluster(port: int = APP_PORT) -> str:
    return f"inbound|{port}||"


def service_listener(svc: Service, port: int | None = None) -> str:
    return f"{svc.vip}_{port or svc.spec.port}"


def route_name(svc: Service, port: int | None = None) -> str:
    return f"{svc.spec.fqdn}:{port or svc.spec.port}"


def inbound_route(port: int = APP_PORT) -> str:
    return f"inbound|{port}"
