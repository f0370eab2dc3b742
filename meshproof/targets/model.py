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
    #: The pod's index within its workload (stable for the pod's life): how checks name it.
    ordinal: int = 0

    @property
    def key(self) -> str:
        """``namespace/name``: how the CLI and evidence name a pod (checks find pods by
        namespace, workload and ordinal through ``Target.pod``, never by this string)."""
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


# ---------------------------------------------------------------- typed values across the
# target interface: what a check sends (ProbeOrder) and what comes back (ProbeResult,
# CaptureSummary). Targets carry them as JSON on their own wire; these are the contract.


@dataclass(frozen=True)
class TLSFiles:
    """Client TLS for a probe: paths *inside the source pod* (see ``Target.put_file``)."""

    cert: str
    key: str
    ca: str
    server_name: str = ""


@dataclass(frozen=True)
class ProbeOrder:
    """A batch of HTTP/1.1 requests sent from one pod (fixtures/probe/probe.py runs it)."""

    url: str
    count: int = 1
    concurrency: int = 1
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    #: True: a new connection per request; False: pooled keep-alive connections.
    fresh: bool = True
    timeout_s: float = 5.0
    #: Bound on the whole batch (every load or retry loop is bounded in count and time).
    deadline_s: float = 60.0
    keep_body: bool = True
    tls: TLSFiles | None = None

    def to_wire(self) -> dict[str, object]:
        d: dict[str, object] = {
            "url": self.url, "count": self.count, "concurrency": self.concurrency,
            "method": self.method, "headers": dict(self.headers), "body": self.body,
            "fresh": self.fresh, "timeout_s": self.timeout_s, "deadline_s": self.deadline_s,
            "keep_body": self.keep_body}
        if self.tls is not None:
            d["tls"] = {"cert": self.tls.cert, "key": self.tls.key, "ca": self.tls.ca,
                        "server_name": self.tls.server_name}
        return d

    @property
    def budget_s(self) -> float:
        """How long a caller waits for the batch's answer before calling it lost."""
        return self.deadline_s + self.timeout_s + 30


#: How a request without a response ended (the probe's own classification).
ERROR_KINDS = ("refused", "reset", "timeout", "tls", "closed", "dns", "unreachable", "other")


@dataclass(frozen=True)
class ProbeResult:
    """One request's outcome: status 0 means no HTTP response (see ``error``)."""

    status: int
    latency_us: int
    error: str | None = None
    detail: str = ""
    #: The response's ``x-*`` headers (the sample app reports version and pod in them).
    headers: dict[str, str] = field(default_factory=dict)
    body: object = None
    #: The TLS peer's URI SAN, when the probe itself spoke TLS.
    peer_uri: str | None = None

    @property
    def version(self) -> str:
        """Which version of the backend answered (the sample app's ``x-version``)."""
        return self.headers.get("x-version", "")

    @property
    def pod(self) -> str:
        return self.headers.get("x-pod", "")

    @property
    def outcome(self) -> str:
        """One word: the HTTP status, or how the request failed (refused, reset, ...)."""
        return str(self.status) if self.status else str(self.error)

    @property
    def json(self) -> dict[str, object]:
        """The body when it was a JSON object, else ``{}``."""
        return self.body if isinstance(self.body, dict) else {}

    @classmethod
    def from_wire(cls, d: dict[str, object]) -> ProbeResult:
        return cls(status=int(d.get("status") or 0),  # type: ignore[call-overload]
                   latency_us=int(d.get("latency_us") or 0),  # type: ignore[call-overload]
                   error=d.get("error"), detail=str(d.get("detail") or ""),  # type: ignore[arg-type]
                   headers=dict(d.get("headers") or {}),  # type: ignore[call-overload]
                   body=d.get("body"), peer_uri=d.get("peer_uri"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class CaptureSummary:
    """What a packet capture between two pods saw: enough to judge encryption."""

    packets: int
    tcp_payload_bytes: int
    tls_records: int
    tls_handshakes: int
    marker: str
    marker_hits: int
    #: Where the raw capture is kept (evidence), if the target keeps one.
    pcap: str = ""


@dataclass(frozen=True)
class ServiceInfo:
    """A service as a target lists it: address, port and the ready pods behind it."""

    namespace: str
    name: str
    vip: str
    port: int
    target_port: int
    selector: dict[str, str]
    endpoints: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ResourceUsage:
    """CPU and memory of one process (a pod's sidecar) at one moment: load tests take
    two and report the difference (per-process figures: system-wide ones lie on VMs)."""

    cpu_s: float  # user + system CPU seconds so far
    rss_kb: int
    private_kb: int  # private (unshared) memory; 0 when the target cannot tell
