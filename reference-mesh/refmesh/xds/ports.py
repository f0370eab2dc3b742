"""Which port of a backend service a request on a given port goes to.

Shared by the split (routes.py) and the HTTPRoute builders (httproutes.py), which
import each other's module otherwise.
"""

from __future__ import annotations

from meshproof.targets.model import Service, ServicePort


def backend_port(backend: Service, port: ServicePort) -> int | None:
    """The backend's port a split on ``port`` goes to: the same number, else the same
    protocol (SMI backends are services; their ports follow the root's), else None."""
    same = [p.port for p in backend.spec.ports if p.port == port.port]
    proto = [p.port for p in backend.spec.ports if p.protocol == port.protocol]
    return (same or proto or [None])[0]
