"""Sending a check's traffic in each protocol a service port declares (any target).

Checks name a protocol, never a port number: the port comes from the
service's declared ports (``ServiceInfo.all_ports``) or the pod's app ports,
so the same check runs where a cluster numbers ports differently. One
request shape per protocol, each reflecting what the server saw:
``http``/``http2`` GET (or POST with a body) ``/echo``; ``grpc`` the echo
service's unary method, or its server stream of :data:`STREAM` messages;
``tcp`` a payload echoed after the app's banner.
"""

from __future__ import annotations

from typing import Any

from meshproof.probe import send
from meshproof.targets.base import Target
from meshproof.targets.model import GRPC_STREAM, GRPC_UNARY, Pod, ProbeResult, ServicePort

#: Every protocol a fixture port declares, in the order checks report them.
PROTOCOLS = ("http", "http2", "grpc", "tcp")
#: Messages asked of a gRPC server stream.
STREAM = 3


def service_ports(target: Target, namespace: str, name: str) -> dict[str, ServicePort]:
    """The service's first port per protocol."""
    svc = next((s for s in target.services() if (s.namespace, s.name) == (namespace, name)),
               None)
    if svc is None:
        raise LookupError(f"the target runs no service {namespace}/{name}")
    out: dict[str, ServicePort] = {}
    for p in svc.all_ports:
        out.setdefault(p.protocol, p)
    return out


def url(protocol: str, host: str, port: int, *, stream: bool = False,
        scheme: str = "http") -> str:
    """The probe URL for ``protocol`` on ``host:port`` (see ProbeOrder); ``scheme``
    ``https`` for HTTP over TLS from the probe itself."""
    if protocol == "tcp":
        return f"tcp://{host}:{port}"
    path = (GRPC_STREAM if stream else GRPC_UNARY) if protocol == "grpc" else "/echo"
    return f"{scheme}://{host}:{port}{path}"


def send_as(target: Target, src: Pod, protocol: str, host: str, port: int, count: int,
            *, stream: bool = False, body: str = "", scheme: str = "http",
            **kw: Any) -> list[ProbeResult]:
    """``count`` requests in ``protocol`` (a body makes HTTP a POST; gRPC's message; TCP's
    payload)."""
    extra: dict[str, Any] = {"protocol": protocol, "body": body}
    if protocol in ("http", "http2") and body:
        extra["method"] = "POST"
    if stream:
        extra["stream_count"] = STREAM
    return send(target, src, url(protocol, host, port, stream=stream, scheme=scheme), count,
                **extra, **kw)


def to_service(target: Target, src: Pod, namespace: str, name: str, count: int,
               **kw: Any) -> dict[str, list[ProbeResult]]:
    """``count`` requests in every protocol the service declares, through its name."""
    host = f"{name}.{namespace}"
    return {proto: send_as(target, src, proto, host, p.port, count, **kw)
            for proto, p in service_ports(target, namespace, name).items()}


def to_pod(target: Target, src: Pod, dst: Pod, count: int,
           **kw: Any) -> dict[str, list[ProbeResult]]:
    """``count`` requests to every app port of ``dst`` by its address (no service): the
    ports a mesh must guard whether or not a check usually calls them. Keyed
    ``protocol:port``."""
    return {f"{p.protocol}:{p.port}": send_as(target, src, p.protocol, dst.ip, p.port, count,
                                              **kw)
            for p in dst.app_ports}


def app_saw(results: list[ProbeResult], protocol: str) -> bool:
    """Every answer's app-side protocol is ``protocol`` (``HTTP/2``, ``gRPC``, ...)."""
    return bool(results) and all(r.json.get("protocol") == protocol for r in results)


def xfcc(r: ProbeResult) -> str:
    """The ``x-forwarded-client-cert`` the app saw (HTTP, HTTP/2 or gRPC metadata)."""
    return str(dict(r.json.get("headers") or {}).get("x-forwarded-client-cert", ""))
