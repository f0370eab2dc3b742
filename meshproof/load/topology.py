"""The load lab: the same small Bookinfo twice, once meshed and once not.

Why twins: the mesh's overhead is the difference between the same path with
and without the two sidecars, measured interleaved in one session (drift on
this VM moves a direct p50 by 40 us in ten minutes, and a lab bring-up per
round would cost more than the rounds). ``load-plain`` is never meshed;
``load-mesh`` gets sidecars (mTLS) when the lab runs ``--mesh reference``.
Only ``reviews-v1`` is deployed so ``/reviews/0`` is a single hop (v2/v3
call ratings), and the page fans out to exactly details + reviews.
"""

from __future__ import annotations

from meshproof.targets.model import NamespaceSpec, ServiceSpec, WorkloadSpec
from meshproof.topology import Topology

PLAIN_NS = "load-plain"
MESH_NS = "load-mesh"
#: the workload of each namespace whose pods run the generators (one per pod)
CLIENT = "client"
#: its first pod on the local lab (the wire test captures in its netns)
CLIENT_POD = "client-0"
MAX_CLIENTS = 16


def _wl(ns: str, name: str, role: str, replicas: int = 1) -> WorkloadSpec:
    return WorkloadSpec(namespace=ns, name=name, role=role, version="v1", replicas=replicas,
                        service_account=role, labels={"app": role, "version": "v1"})


def load_topology(clients: int = 1) -> Topology:
    """Twin namespaces, each: ``clients`` client pods (one generator each: several when
    one process cannot generate the rate; their histograms are merged), productpage,
    details, reviews-v1 (+ services)."""
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"load clients 1..{MAX_CLIENTS}, not {clients}")
    t = Topology()
    t.namespaces = [NamespaceSpec(PLAIN_NS, False), NamespaceSpec(MESH_NS, True)]
    for ns in (PLAIN_NS, MESH_NS):
        t.workloads += [_wl(ns, CLIENT, "client", clients), _wl(ns, "productpage", "productpage"),
                        _wl(ns, "details", "details"), _wl(ns, "reviews-v1", "reviews")]
        t.services += [ServiceSpec(ns, "productpage", {"app": "productpage"}),
                       ServiceSpec(ns, "details", {"app": "details"}),
                       ServiceSpec(ns, "reviews", {"app": "reviews"})]
    return t
