"""A ``Registry`` from a running target's listings, to check policy references.

The target returns plain dicts over its control socket; the loader checks
references against the shared model, so this is the one place that turns one
into the other.
"""

from __future__ import annotations

from typing import Any

from meshproof.targets.model import Pod, Registry, Service, ServiceSpec


def registry_from_listings(pods: list[dict[str, Any]], services: list[dict[str, Any]]
                           ) -> Registry:
    """``target.pods()`` and ``target.services()`` as a Registry."""
    pod_fields = set(Pod.__dataclass_fields__)
    reg_pods = [Pod(**{k: v for k, v in p.items() if k in pod_fields}) for p in pods]
    reg_services = []
    for s in services:
        namespace, name = s["key"].split("/", 1)
        spec = ServiceSpec(namespace, name, dict(s.get("selector") or {}),
                           port=int(s.get("port", 80)), target_port=int(s.get("target_port", 0)))
        reg_services.append(Service(spec, str(s.get("vip", ""))))
    return Registry(services=reg_services, pods=reg_pods)
