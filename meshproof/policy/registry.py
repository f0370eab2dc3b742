"""A ``Registry`` of what a target runs, to check policy references against.

The loader checks references (services, workloads, namespaces) against the
shared model; this is the one place that turns a target's typed listings
into it, whatever the target.
"""

from __future__ import annotations

from meshproof.targets.base import Target
from meshproof.targets.model import Pod, Registry, Service, ServiceInfo, ServiceSpec


def registry_from(pods: list[Pod], services: list[ServiceInfo]) -> Registry:
    specs = [Service(ServiceSpec(s.namespace, s.name, dict(s.selector), port=s.port,
                                 target_port=s.target_port,
                                 protocol=s.all_ports[0].protocol,
                                 extra_ports=s.all_ports[1:]), s.vip) for s in services]
    return Registry(services=specs, pods=list(pods))


def registry_of(target: Target) -> Registry:
    """``target``'s pods and services, as the loader checks references against them."""
    return registry_from(target.pods(), target.services())
