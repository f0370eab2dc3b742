"""What a kind's reader may look up while it builds intents.

HTTPRouteGroups (which TrafficSplits and TrafficTargets reference, possibly
from another document or file of the same load) and, when the caller has
one, the registry of what runs, so a reference to a service that does not
exist fails at load time instead of as silently unrouted traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from meshproof.errors import ConfigError
from meshproof.intent import Backend, HTTPMatch, Intent
from meshproof.policy.errors import FieldError
from meshproof.policy.limits import UINT32_MAX
from meshproof.targets.model import SERVICE_PORT, Registry

T = TypeVar("T")
#: What a kind's reader returns: each intent with the field to blame if it clashes.
Produced = list[tuple[Intent, str]]


@dataclass
class RouteGroup:
    """An HTTPRouteGroup's matches by name, in the order written."""

    ref: str  # namespace/name
    matches: dict[str, HTTPMatch]


@dataclass
class Context:
    registry: Registry | None = None
    route_groups: dict[str, RouteGroup] = field(default_factory=dict)
    #: SMI TCPRoutes defined (``namespace/name``): connection-level access rules.
    tcp_routes: set[str] = field(default_factory=set)

    def service(self, namespace: str, name: str, at: str) -> str:
        """``namespace/name`` of a referenced service, checked against the registry."""
        if self.registry is not None and not any(
                s.namespace == namespace and s.name == name for s in self.registry.services):
            known = sorted(s.name for s in self.registry.services if s.namespace == namespace)
            raise FieldError(at, f"service {namespace}/{name} does not exist",
                             f"services in {namespace}: {', '.join(known) or 'none'}")
        return f"{namespace}/{name}"

    def service_ports(self, namespace: str, name: str) -> tuple[int, ...]:
        """The ports a service exposes: from the registry, else the fixture port (80)."""
        if self.registry is None:
            return (SERVICE_PORT,)
        return tuple(sorted({s.spec.port for s in self.registry.services
                             if s.namespace == namespace and s.name == name})) or (SERVICE_PORT,)

    def port(self, namespace: str, name: str, port: int, at: str) -> None:
        """A route on ``port`` of a service: honoured when the service has that port.

        Every fixture service has one port, so a route on it covers all of its
        traffic; a route on another port would apply to nothing, or (if the
        port were dropped) to the wrong traffic, so it is refused.
        """
        ports = self.service_ports(namespace, name)
        if port not in ports:
            raise FieldError(at, f"service {namespace}/{name} has no port {port}",
                             f"its ports: {', '.join(map(str, ports))} (or omit port)")

    def namespace(self, namespace: str, at: str) -> str:
        """A namespace, checked against the registry (a service or pod must be in it)."""
        if self.registry is not None and not any(
                x.namespace == namespace for x in [*self.registry.services, *self.registry.pods]):
            known = sorted({x.namespace for x in [*self.registry.services, *self.registry.pods]})
            raise FieldError(at, f"namespace {namespace} does not exist",
                             f"namespaces: {', '.join(known) or 'none'}")
        return namespace

    def workload(self, namespace: str, name: str, at: str) -> str:
        """A workload name, checked against the registry's pods (if it lists any)."""
        if self.registry is not None and self.registry.pods and not any(
                p.namespace == namespace and p.workload == name for p in self.registry.pods):
            known = sorted({p.workload for p in self.registry.pods if p.namespace == namespace})
            raise FieldError(at, f"workload {namespace}/{name} does not exist",
                             f"workloads in {namespace}: {', '.join(known) or 'none'}")
        return name

    def route_group(self, namespace: str, name: str, at: str) -> RouteGroup:
        group = self.route_groups.get(f"{namespace}/{name}")
        if group is None:
            raise FieldError(at, f"HTTPRouteGroup {namespace}/{name} is not defined",
                             "load the HTTPRouteGroup together with what references it "
                             "(same file, or the same 'apply -f' set), in the same namespace")
        return group


def check_weights(backends: list[Backend], at: str) -> None:
    """At least one weight > 0, and a sum Envoy can program (uint32)."""
    total = sum(b.weight for b in backends)
    if total <= 0:
        raise FieldError(at, "no backend has a weight > 0",
                         "give at least one backend a positive weight")
    if total > UINT32_MAX:
        raise FieldError(at, f"the weights add up to {total}, more than {UINT32_MAX}",
                         "weights are relative: scale them down (e.g. to percentages)")


def build(at: str, factory: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Construct an intent; its own validation error is located at ``at``."""
    try:
        return factory(*args, **kwargs)
    except ConfigError as exc:
        raise FieldError(at, exc.what, exc.hint) from exc
