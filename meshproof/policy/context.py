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
from meshproof.intent import HTTPMatch, Intent
from meshproof.policy.errors import FieldError
from meshproof.targets.model import Registry

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

    def service(self, namespace: str, name: str, at: str) -> str:
        """``namespace/name`` of a referenced service, checked against the registry."""
        if self.registry is not None and not any(
                s.namespace == namespace and s.name == name for s in self.registry.services):
            known = sorted(s.name for s in self.registry.services if s.namespace == namespace)
            raise FieldError(at, f"service {namespace}/{name} does not exist",
                             f"services in {namespace}: {', '.join(known) or 'none'}")
        return f"{namespace}/{name}"

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


def build(at: str, factory: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Construct an intent; its own validation error is located at ``at``."""
    try:
        return factory(*args, **kwargs)
    except ConfigError as exc:
        raise FieldError(at, exc.what, exc.hint) from exc
