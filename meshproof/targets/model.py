"""The mesh-neutral data model shared by targets, meshes and tests.

These are plain values: a target fills them in, a mesh adapter and its
control plane read them. Keep them free of behaviour so every layer can
depend on them without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TRUST_DOMAIN = "cluster.local"
#: Port every fixture workload listens on inside its pod.
APP_PORT = 9080
#: Port every fixture service exposes on its VIP.
SERVICE_PORT = 80


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """The SPIFFE ID of a workload identity, as the mesh's certificates carry it."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    meshed: bool


@dataclass(frozen=True)
class WorkloadSpec:
    """A deployment: ``replicas`` pods running ``role`` of the sample app."""

    namespace: str
    name: str
    role: str  # productpage | details | reviews | ratings | echo | client
    version: str = "v1"
    replicas: int = 1
    service_account: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    port: int = APP_PORT

    @property
    def app(self) -> str:
        return self.labels.get("app", self.role)

    @property
    def sa(self) -> str:
        return self.service_account or self.name


@dataclass(frozen=True)
class ServiceSpec:
    """A service: a VIP port balanced over ready pods whose labels match ``selector``."""

    namespace: str
    name: str
    selector: dict[str, str]
    port: int = SERVICE_PORT
    target_port: int = APP_PORT

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


@dataclass
class Pod:
    """One running pod as the target reports it."""

    namespace: str
    name: str
    workload: str
    ip: str
    labels: dict[str, str]
    service_account: str
    meshed: bool
    ready: bool = False
    proxy_uid: int = 0
    port: int = APP_PORT

    @property
    def key(self) -> str:
        """``namespace/name``: how tests and the CLI name a pod."""
        return f"{self.namespace}/{self.name}"

    @property
    def identity(self) -> str:
        return spiffe_id(self.namespace, self.service_account)


@dataclass
class Service:
    """A service as deployed: its spec plus the VIP the target gave it."""

    spec: ServiceSpec
    vip: str

    @property
    def namespace(self) -> str:
        return self.spec.namespace

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key(self) -> str:
        return f"{self.spec.namespace}/{self.spec.name}"

    def selects(self, pod: Pod) -> bool:
        return pod.namespace == self.spec.namespace and all(
            pod.labels.get(k) == v for k, v in self.spec.selector.items()
        )


@dataclass
class Registry:
    """A snapshot of what runs: the input a control plane programs from."""

    services: list[Service]
    pods: list[Pod]

    def endpoints(self, service: Service) -> list[Pod]:
        """Ready pods behind ``service``, in a stable order."""
        return sorted(
            (p for p in self.pods if p.ready and service.selects(p)), key=lambda p: p.name
        )

    def service(self, namespace: str, name: str) -> Service:
        for s in self.services:
            if s.namespace == namespace and s.name == name:
                return s
        raise KeyError(f"{namespace}/{name}")
