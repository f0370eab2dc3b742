"""The mesh-neutral data model shared by targets, meshes and tests.

These are plain values: a target fills them in, a mesh adapter and its
control plane read them. Keep them free of behaviour so every layer can
depend on them without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TRUST_DOMAIN = "cluster.local"
#: Port every fixture workload listens on inside its pod.
APP_PORT = 9080
#: Port every fixture service exposes on its VIP.
SERVICE_PORT = 80
#: The sample app's other ports (every fixture pod listens on all of them): a port
#: declared HTTP/2 (h2c), a gRPC port (Istio's echo uses 7070) and a raw TCP echo
#: with a banner. The HTTP ports all sniff HTTP/1.1 vs the HTTP/2 preface.
HTTP2_PORT = 9081
GRPC_PORT = 7070
TCP_PORT = 9090

#: Application protocols a port declares, Kubernetes ``appProtocol`` style (Istio reads the
#: same from the port name's prefix, ``grpc-web`` -> grpc). ``http``: HTTP/1.1 (a mesh may
#: still carry h2c on it); ``http2``: HTTP/2 cleartext end to end; ``grpc``: gRPC over
#: HTTP/2; ``tcp``: opaque bytes (L4 only: no HTTP parsing, access rules at L4).
APP_PROTOCOLS = ("http", "http2", "grpc", "tcp")


def _as(cls: Any, v: Any) -> Any:
    """``v`` as dataclass ``cls`` (JSON round trips turn nested dataclasses into dicts)."""
    return v if isinstance(v, cls) else cls(**v)


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`APP_PROTOCOLS`, else a ValueError naming them."""
    if protocol not in APP_PROTOCOLS:
        raise ValueError(f"unknown application protocol {protocol!r}: use one of "
                         f"{', '.join(APP_PROTOCOLS)}")
    return protocol


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """The SPIFFE ID of a workload identity, as the mesh's certificates carry it."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    meshed: bool


@dataclass(frozen=True)
class AppPort:
    """A port the app listens on inside its pod, and the protocol it speaks there."""

    port: int
    protocol: str = "http"

    def __post_init__(self) -> None:
        check_protocol(self.protocol)


#: Every port the fixture app serves (fixtures/app/workload.py), primary first.
FIXTURE_APP_PORTS: tuple[AppPort, ...] = (
    AppPort(APP_PORT, "http"), AppPort(HTTP2_PORT, "http2"), AppPort(GRPC_PORT, "grpc"),
    AppPort(TCP_PORT, "tcp"))


@dataclass(frozen=True)
class ServicePort:
    """One port of a service: VIP ``port`` -> pod ``target_port``, speaking ``protocol``.

    ``name`` follows Istio's rule (the protocol, optionally ``-suffix``); it defaults to
    the protocol.
    """

    port: int
    target_port: int
    protocol: str = "http"
    name: str = ""

    def __post_init__(self) -> None:
        check_protocol(self.protocol)

    @property
    def port_name(self) -> str:
        return self.name or self.protocol


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
    #: Ports served besides ``port`` (HTTP/1.1 there); see :data:`FIXTURE_APP_PORTS`.
    extra_ports: tuple[AppPort, ...] = ()

    @property
    def ports(self) -> tuple[AppPort, ...]:
        """Every port the app serves, the primary HTTP port first."""
        return (AppPort(self.port, "http"), *self.extra_ports)

    def port_env(self) -> dict[str, str]:
        """The app's port variables (fixtures/app/workload.py), the same on every target."""
        more = [p for p in self.extra_ports if p.port != self.port]
        return {"MESHPROOF_PORT": str(self.port),
                "MESHPROOF_HTTP_PORTS": ",".join(str(p.port) for p in more
                                                 if p.protocol != "tcp"),
                "MESHPROOF_TCP_PORTS": ",".join(str(p.port) for p in more
                                                if p.protocol == "tcp")}

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
    #: The primary port's protocol (``port`` -> ``target_port``).
    protocol: str = "http"
    #: More ports besides the primary one (Kubernetes Services have a list; the first is
    #: kept in ``port``/``target_port`` because every check before protocols used it).
    extra_ports: tuple[ServicePort, ...] = ()

    def __post_init__(self) -> None:
        check_protocol(self.protocol)
        seen = [p.port for p in self.ports]
        if len(set(seen)) != len(seen):
            raise ValueError(f"service {self.namespace}/{self.name}: duplicate port in {seen}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ServiceSpec:
        """From ``dataclasses.asdict`` JSON (nested ports back to ``ServicePort``)."""
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["extra_ports"] = tuple(_as(ServicePort, p) for p in d.get("extra_ports") or ())
        return cls(**d)

    @property
    def ports(self) -> tuple[ServicePort, ...]:
        """Every port, the primary one first (named after its protocol)."""
        return (ServicePort(self.port, self.target_port, self.protocol), *self.extra_ports)

    def port_for(self, protocol: str) -> ServicePort:
        """The first port declaring ``protocol`` (KeyError naming the ports if none)."""
        for p in self.ports:
            if p.protocol == protocol:
                return p
        raise KeyError(f"{self.namespace}/{self.name} has no {protocol} port "
                       f"(ports: {[(p.port, p.protocol) for p in self.ports]})")

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
    #: Every port the app serves (primary first); empty means ``port`` only, HTTP.
    ports: tuple[AppPort, ...] = ()
    #: The pod's index within its workload (stable for the pod's life): how checks name it.
    ordinal: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Pod:
        """From ``dataclasses.asdict`` JSON; unknown keys (e.g. ``key``) ignored."""
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["ports"] = tuple(_as(AppPort, p) for p in d.get("ports") or ())
        return cls(**d)

    @property
    def key(self) -> str:
        """``namespace/name``: how the CLI and evidence name a pod (checks find pods by
        namespace, workload and ordinal through ``Target.pod``, never by this string)."""
        return f"{self.namespace}/{self.name}"

    @property
    def identity(self) -> str:
        return spiffe_id(self.namespace, self.service_account)

    @property
    def app_ports(self) -> tuple[AppPort, ...]:
        """The ports the app serves: ``ports``, or just ``port`` (HTTP) when unset."""
        return self.ports or (AppPort(self.port, "http"),)

    def port_for(self, protocol: str) -> int:
        """The pod's first app port speaking ``protocol`` (KeyError if none)."""
        for p in self.app_ports:
            if p.protocol == protocol:
                return p.port
        raise KeyError(f"pod {self.key} serves no {protocol} port")


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


#: What the probe speaks (``ProbeOrder.protocol``): the service ports' vocabulary.
#: ``http``: HTTP/1.1; ``http2``: HTTP/2, h2c prior knowledge on ``http://``, ALPN h2 on
#: ``https://``; ``grpc``: gRPC over HTTP/2 (same transport rule); ``tcp``: connect to
#: ``tcp://host:port``, read the server's banner line, send ``body``, read it echoed.
PROBE_PROTOCOLS = APP_PROTOCOLS

#: The sample app's gRPC service (fixtures/app/workload.py answers any method; one
#: whose name ends in ``Stream`` is a server stream of ``stream_count`` messages).
GRPC_ECHO_SERVICE = "meshproof.echo.EchoTestService"
GRPC_UNARY = f"/{GRPC_ECHO_SERVICE}/Echo"
GRPC_STREAM = f"/{GRPC_ECHO_SERVICE}/EchoStream"


@dataclass(frozen=True)
class ProbeOrder:
    """A batch of requests sent from one pod (fixtures/probe/probe.py runs it).

    ``protocol`` picks the wire (see :data:`PROBE_PROTOCOLS`). For ``grpc`` the URL's
    path is the method (``http://echo.team-b:7070/meshproof.echo.EchoTestService/Echo``),
    ``body`` the request's message text and ``stream_count`` how many messages a
    ``...Stream`` method should answer with; ``headers`` are sent as metadata. For
    ``tcp`` the URL is ``tcp://host:port`` and ``body`` the payload echoed back.
    """

    url: str
    count: int = 1
    concurrency: int = 1
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    #: True: a new connection per request; False: pooled keep-alive connections
    #: (HTTP/2 and gRPC: one connection per worker, one stream per request).
    fresh: bool = True
    timeout_s: float = 5.0
    #: Bound on the whole batch (every load or retry loop is bounded in count and time).
    deadline_s: float = 60.0
    keep_body: bool = True
    tls: TLSFiles | None = None
    protocol: str = "http"
    stream_count: int = 0
    #: More URLs (HTTP/1.1 only) sent in the same batch: request i goes to
    #: ``(url, *interleave)[i % (1 + len(interleave))]``, so ``results[i]`` of a control
    #: group shares the batch's workers, concurrency and time window with the rest.
    interleave: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_protocol(self.protocol)
        if self.interleave and self.protocol != "http":
            raise ValueError(f"interleave is for protocol http only, not {self.protocol}")

    def to_wire(self) -> dict[str, object]:
        d: dict[str, object] = {
            "url": self.url, "count": self.count, "concurrency": self.concurrency,
            "method": self.method, "headers": dict(self.headers), "body": self.body,
            "fresh": self.fresh, "timeout_s": self.timeout_s, "deadline_s": self.deadline_s,
            "keep_body": self.keep_body}
        if self.protocol != "http":
            d["protocol"] = self.protocol
        if self.stream_count:
            d["stream_count"] = self.stream_count
        if self.interleave:
            d["interleave"] = list(self.interleave)
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
    #: Which wire the answer came over: ``http/1.1``, ``h2``, ``grpc`` or ``tcp``.
    protocol: str = "http/1.1"
    #: gRPC: the trailers' ``grpc-status`` (None without trailers) and ``grpc-message``.
    grpc_status: int | None = None
    grpc_message: str = ""
    #: gRPC: response messages received (a server stream has several); TCP: 1 when the
    #: payload came back intact.
    messages: int = 0
    #: TCP: the server's first line (the sample app's banner names service/version/pod).
    banner: str = ""

    @property
    def ok(self) -> bool:
        """The request did what was asked: HTTP 200; gRPC also ``grpc-status`` 0; TCP the
        banner and the payload echoed intact."""
        if self.protocol == "tcp":
            return self.error is None and self.messages == 1
        if self.protocol == "grpc":
            return self.status == 200 and self.grpc_status == 0
        return self.status == 200

    @property
    def version(self) -> str:
        """Which version of the backend answered (the sample app's ``x-version``)."""
        return self.headers.get("x-version", "")

    @property
    def pod(self) -> str:
        return self.headers.get("x-pod", "")

    @property
    def outcome(self) -> str:
        """One word: the HTTP status (``grpc-N`` for a gRPC answer, ``echoed`` for TCP), or
        how the request failed (refused, reset, ...)."""
        if self.protocol == "grpc" and self.status == 200 and self.grpc_status is not None:
            return f"grpc-{self.grpc_status}"
        if self.protocol == "tcp" and self.ok:
            return "echoed"
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
                   body=d.get("body"), peer_uri=d.get("peer_uri"),  # type: ignore[arg-type]
                   protocol=str(d.get("protocol") or "http/1.1"),
                   grpc_status=(None if d.get("grpc_status") is None
                                else int(d["grpc_status"])),  # type: ignore[call-overload]
                   grpc_message=str(d.get("grpc_message") or ""),
                   messages=int(d.get("messages") or 0),  # type: ignore[call-overload]
                   banner=str(d.get("banner") or ""))


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
    #: Every port (primary first); empty from a target that predates protocols.
    ports: tuple[ServicePort, ...] = ()

    @property
    def all_ports(self) -> tuple[ServicePort, ...]:
        return self.ports or (ServicePort(self.port, self.target_port, "http"),)

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
