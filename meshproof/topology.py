"""The fixture topology every test uses (DESIGN.md, "Shared contracts").

- ``bookinfo`` (meshed): productpage, details, reviews-v1/v2/v3, ratings, client;
  services productpage, details, ratings, reviews (all versions) and
  reviews-v1/v2/v3 (one version each: SMI TrafficSplit backends are services),
  and ``sentinel`` (no endpoints: the black-box adapter's programmed signal).
- ``team-a``/``team-b``/``team-c`` (meshed): ``echo`` and ``client`` each.
- ``outside`` (not meshed): a ``client``, the plaintext / unmeshed caller.

Ports and protocols: every pod's app serves HTTP/1.1 (and h2c) on 9080, HTTP/2
on 9081, gRPC on 7070 and a TCP echo on 9090 (``FIXTURE_APP_PORTS``). Every
service has its HTTP port 80 -> 9080; the ``echo`` services also declare
``http2`` 81 -> 9081, ``grpc`` 7070 and ``tcp`` 9090, and the ``reviews``
services ``grpc`` 7070 (a gRPC split has versions to split over).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshproof.targets.model import (FIXTURE_APP_PORTS, GRPC_PORT, HTTP2_PORT, TCP_PORT,
                                     NamespaceSpec, ServicePort, ServiceSpec, WorkloadSpec)

ROLES = ("productpage", "details", "reviews", "ratings", "echo", "client")
TEAMS = ("team-a", "team-b", "team-c")
#: The echo services' ports besides HTTP 80: one per protocol.
ECHO_PORTS = (ServicePort(81, HTTP2_PORT, "http2"), ServicePort(GRPC_PORT, GRPC_PORT, "grpc"),
              ServicePort(TCP_PORT, TCP_PORT, "tcp"))
GRPC_ONLY = (ServicePort(GRPC_PORT, GRPC_PORT, "grpc"),)


@dataclass
class Topology:
    namespaces: list[NamespaceSpec] = field(default_factory=list)
    workloads: list[WorkloadSpec] = field(default_factory=list)
    services: list[ServiceSpec] = field(default_factory=list)

    @property
    def pod_count(self) -> int:
        return sum(w.replicas for w in self.workloads)


def _wl(ns: str, name: str, role: str, version: str = "v1", sa: str = "",
        replicas: int = 1) -> WorkloadSpec:
    return WorkloadSpec(namespace=ns, name=name, role=role, version=version, replicas=replicas,
                        service_account=sa or role,
                        labels={"app": role, "version": version},
                        extra_ports=FIXTURE_APP_PORTS[1:])


#: Topologies a target can bring up (``--topology``), by name.
TOPOLOGIES = ("fixture", "load")


def named(name: str, *, reviews_replicas: int = 1, load_clients: int = 1) -> Topology:
    """The topology ``name``: every target builds its own from this one function."""
    if name == "load":  # meshed/unmeshed twins for the load tests (meshproof.load)
        from meshproof.load.topology import load_topology

        return load_topology(clients=load_clients)
    if name != "fixture":
        raise ValueError(f"unknown topology {name!r}: {', '.join(TOPOLOGIES)}")
    return fixture_topology(reviews_replicas=reviews_replicas)


def fixture_topology(*, reviews_replicas: int = 1) -> Topology:
    """The standard topology; ``reviews_replicas`` scales each reviews version."""
    t = Topology()
    t.namespaces = [NamespaceSpec("bookinfo", True),
                    *(NamespaceSpec(team, True) for team in TEAMS),
                    NamespaceSpec("outside", False)]
    t.workloads = [
        _wl("bookinfo", "productpage", "productpage"),
        _wl("bookinfo", "details", "details"),
        *(_wl("bookinfo", f"reviews-{v}", "reviews", v, replicas=reviews_replicas)
          for v in ("v1", "v2", "v3")),
        _wl("bookinfo", "ratings", "ratings"),
        _wl("bookinfo", "client", "client"),
        *(w for team in TEAMS for w in (_wl(team, "echo", "echo"), _wl(team, "client", "client"))),
        _wl("outside", "client", "client"),
    ]
    t.services = [
        ServiceSpec("bookinfo", "productpage", {"app": "productpage"}),
        ServiceSpec("bookinfo", "details", {"app": "details"}),
        ServiceSpec("bookinfo", "ratings", {"app": "ratings"}),
        ServiceSpec("bookinfo", "reviews", {"app": "reviews"}, extra_ports=GRPC_ONLY),
        *(ServiceSpec("bookinfo", f"reviews-{v}", {"app": "reviews", "version": v},
                      extra_ports=GRPC_ONLY)
          for v in ("v1", "v2", "v3")),
        *(ServiceSpec(team, "echo", {"app": "echo"}, extra_ports=ECHO_PORTS) for team in TEAMS),
        # No pod carries this label: the black-box adapter's sentinel fault lives on it
        # (meshproof.mesh.blackbox), so no check's own traffic can meet it.
        ServiceSpec("bookinfo", "sentinel", {"app": "meshproof-sentinel"}),
    ]
    return t
