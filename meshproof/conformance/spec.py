"""What a conformance check declares, free of pytest: features, needs, defects caught.

The Gateway API conformance shape: each check says up front its short name,
a description, the features it needs (a mesh that does not claim them skips
it, with the reason) and the intents it applies; meshproof adds the defects
it catches (the project's own tests prove it fails on each of them) and the
target and mesh capabilities it needs (skipped, with the reason, where
absent). Reports and the chaos suite read these without importing pytest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Every feature a check may need; a mesh's claims() name a subset.
FEATURES = {
    "traffic-split": "SMI TrafficSplit by weight",
    "traffic-split-match": "TrafficSplit limited to requests matching an HTTPRouteGroup",
    "gamma-httproute": "Gateway API HTTPRoute with a Service parent (GAMMA)",
    "mtls-strict": "STRICT mTLS refuses plaintext",
    "mtls-permissive": "PERMISSIVE mTLS accepts plaintext and mTLS",
    "mtls-workload-override": "a workload's mTLS mode beats its namespace's",
    "xfcc-spiffe": "the server sees the caller's SPIFFE ID",
    "server-identity": "clients verify the server's SPIFFE ID",
    "cert-validation": "peers' certificates are validated (CA, expiry)",
    "cert-rotation": "workload certificates are replaced before they expire",
    "identity-issuance": "a workload's credentials get a certificate for its own identity only",
    "access-control": "SMI TrafficTarget access control, deny by default",
    "access-control-routes": "access rules limited to paths and methods",
    "retries": "retry policy (attempt counts, retriable statuses)",
    "timeouts": "request timeouts",
    "fault-injection": "abort and delay faults at a percentage",
    "protocol-http2": "HTTP/2 (h2c) carried on ports declared http2, end to end",
    "protocol-grpc": "gRPC (unary and server stream) carried on ports declared grpc",
    "protocol-tcp": "opaque TCP carried on ports declared tcp",
    "access-control-tcp": "SMI TrafficTarget enforced at L4 on TCP ports",
}


@dataclass(frozen=True)
class CheckSpec:
    name: str
    description: str
    features: tuple[str, ...]
    catches: tuple[str, ...]
    intents: tuple[str, ...]
    #: Target capabilities (meshproof.targets.base.CAPABILITIES) the check needs.
    target_needs: tuple[str, ...] = ("probe",)
    #: Mesh adapter capabilities (meshproof.mesh.base.CAPABILITIES) the check needs.
    mesh_needs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
