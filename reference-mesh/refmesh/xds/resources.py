"""Build one sidecar's listeners, clusters, endpoints and routes from (Registry, Policy).

Shape (as Istio / OSM program a sidecar):

- ``virtualOutbound`` on 0.0.0.0:15001, ``use_original_dst``: captured
  outbound connections are handed to the listener owning their original
  destination; anything else goes plaintext to ``PassthroughCluster``
  (ORIGINAL_DST).
- one ``VIP_PORT`` listener per service port, ``bind_to_port: false``: for
  ``http``/``http2``/``grpc`` ports an HTTP connection manager with an RDS route
  (weighted clusters for a TrafficSplit; HTTP/2 accepted downstream where the
  port declares it), for ``tcp`` ports a TCP proxy.
- one EDS cluster per service port ``outbound|PORT||name.ns.svc.cluster.local``
  (HTTP/2 upstream, ALPN h2 inside mTLS, for ``http2`` and ``grpc`` ports);
  endpoints of meshed pods carry ``tlsMode: istio`` and get mTLS pinned to
  the service's SPIFFE IDs, other endpoints plaintext (Istio's auto mTLS
  via ``transport_socket_matches``).
- ``virtualInbound`` on 0.0.0.0:15006 (original_dst + tls_inspector): for
  every app port of the pod, STRICT = an mTLS chain only; PERMISSIVE = mTLS
  chain plus a plaintext chain (all mTLS chains first, then the plaintext
  ones). HTTP ports get the HCM below, ``tcp`` ports the network RBAC filter
  (access rules at L4, :func:`refmesh.xds.authz.network_rbac`) and a TCP proxy
  to the app's port. The inbound HCM sets ``x-forwarded-client-cert`` to
  the caller's URI (SANITIZE_SET: a caller cannot forge it), enforces
  access control (RBAC, access mode ``smi``: see :mod:`refmesh.xds.authz`),
  then forwards to 127.0.0.1:9080 by the RDS route ``inbound|9080`` (RDS,
  not inline: route updates reach pooled connections, listener updates
  do not until they drain).

Caller-side intents (TrafficSplit, Retry, Timeout, Fault) live in the
service's outbound route (:mod:`refmesh.xds.routes`), OutlierDetection in
its outbound cluster. ``SidecarOptions.defects`` injects the named defects
(:mod:`refmesh.xds.defects`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshproof.intent import MTLSModeValue, OutlierDetection, Policy, effective_mtls
from meshproof.targets.model import APP_PORT, AppPort, Pod, Registry, Service, ServicePort
from refmesh.bootstrap import ads_config_source
from refmesh.xds import names, tls
from refmesh.xds.authz import RBAC_FILTER, network_rbac, rbac_base_filter, rbac_per_route
from refmesh.xds.httproutes import routes_for
from refmesh.xds.routes import DEFAULT_RETRY, fault_filter, route_config

__all__ = ["DEFAULT_RETRY", "SidecarOptions", "SidecarResources", "build_node", "build_shared",
           "build_sidecar", "route_config"]

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
TLS_MODE_KEY = "envoy.transport_socket_match"
HTTP_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_HTTP_OPTIONS = "type.googleapis.com/" + HTTP_OPTIONS_KEY
#: Protocols carried as HTTP/2 end to end (upstream clusters with HTTP/2, ALPN h2).
H2_PROTOCOLS = frozenset({"http2", "grpc"})


@dataclass(frozen=True)
class SidecarOptions:
    """Knobs tests need to run a sidecar outside a pod (loopback, free ports)."""

    bind_address: str = "0.0.0.0"
    outbound_port: int = 15001
    inbound_port: int = 15006
    #: Destination port the inbound chains match (the app's port behind capture).
    inbound_match_port: int = APP_PORT
    #: Where the inbound side forwards to: the app in the same netns.
    app_address: str = "127.0.0.1"
    app_port: int = APP_PORT
    default_mtls: MTLSModeValue = MTLSModeValue.PERMISSIVE
    connect_timeout: str = "1s"
    #: Defect IDs to inject (negative controls; refmesh.xds.defects). Empty in a healthy mesh.
    defects: tuple[str, ...] = ()

    @property
    def defect_set(self) -> frozenset[str]:
        return frozenset(self.defects)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, MTLSModeValue) else
                    sorted(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SidecarOptions:
        d = dict(d)
        if "default_mtls" in d:
            d["default_mtls"] = MTLSModeValue(d["default_mtls"])
        if "defects" in d:
            d["defects"] = tuple(sorted(str(x) for x in d["defects"]))
        return cls(**d)


@dataclass
class SidecarResources:
    """Everything one sidecar gets over ADS, as dicts keyed by resource name."""

    listeners: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"listeners": list(self.listeners.values()), "clusters": list(self.clusters.values()),
                "endpoints": list(self.endpoints.values()), "routes": list(self.routes.values())}


def workload_mtls(pod: Pod, policy: Policy, opts: SidecarOptions) -> MTLSModeValue:
    modes = list(policy.mtls)
    if "workload-strict-ignored" in opts.defect_set:
        # Precedence wrong in one direction: a workload's STRICT never beats its
        # namespace's PERMISSIVE (its PERMISSIVE still beats STRICT).
        modes = [m for m in modes if not (m.workload and m.mode is MTLSModeValue.STRICT)]
    if "namespace-mode-ignored" in opts.defect_set and any(not m.namespace for m in modes):
        # Precedence wrong between namespace and mesh: under a mesh-wide mode, a
        # namespace's own mode is ignored (in both directions).
        modes = [m for m in modes if not (m.namespace and not m.workload)]
    return effective_mtls(modes, pod.namespace, pod.workload, opts.default_mtls)


def build_sidecar(reg: Registry, policy: Policy, pod: Pod,
                  opts: SidecarOptions = SidecarOptions()) -> SidecarResources:
    """All xDS resources for the sidecar of ``pod``: the shared part plus its own."""
    r = build_shared(reg, policy, opts, pod.namespace)
    own = build_node(policy, pod, opts)
    for kind in ("listeners", "clusters", "endpoints", "routes"):
        getattr(r, kind).update(getattr(own, kind))
    return r


def build_shared(reg: Registry, policy: Policy, opts: SidecarOptions, namespace: str
                 ) -> SidecarResources:
    """The resources every sidecar with these options in ``namespace`` gets alike (the
    caller side: services' clusters, endpoints, routes and listeners, passthrough).

    Why split: the control plane builds this once per version and caller namespace
    for all sidecars instead of once per sidecar (the cost that grew with the sidecar
    count). Per namespace, because a consumer HTTPRoute applies only to callers in its
    own namespace and short service names resolve in the caller's namespace.
    """
    r = SidecarResources()
    defects = opts.defect_set
    splits = {s.service: s for s in policy.splits}
    retries = {x.service: x for x in policy.retries}
    timeouts = {x.service: x for x in policy.timeouts}
    faults = {x.service: x for x in policy.faults}
    outliers = {x.service: x for x in policy.outliers}
    for svc in sorted(reg.services, key=lambda s: (s.namespace, s.name)):
        outlier = None if "outlier-not-programmed" in defects else outliers.get(svc.key)
        for port in svc.spec.ports:
            c = outbound_cluster(reg, svc, opts, outlier, port)
            r.clusters[c["name"]] = c
            e = load_assignment(reg, svc, port, keep_not_ready="dead-endpoint-kept" in defects)
            if "endpoints-first-port-only" in defects and port != svc.spec.ports[0]:
                # The defect: endpoints read for a Service's first port only (as from a
                # one-port endpoints reader): its other ports have none, Envoy answers 503.
                e["endpoints"] = []
            r.endpoints[e["cluster_name"]] = e
            if port.protocol != "tcp":
                rt = route_config(reg, svc, splits.get(svc.key), retry=retries.get(svc.key),
                                  timeout=timeouts.get(svc.key), fault=faults.get(svc.key),
                                  http_routes=routes_for(list(policy.routes), svc, namespace,
                                                         defects, port.port),
                                  defects=defects, port=port)
                r.routes[rt["name"]] = rt
            lst = service_listener(svc, port, opts)
            r.listeners[lst["name"]] = lst
    if "route-by-host" in defects:
        _route_by_host(reg, namespace, r)
    pt = passthrough_cluster(opts)
    r.clusters[pt["name"]] = pt
    r.listeners[names.VIRTUAL_OUTBOUND] = virtual_outbound(opts)
    return r


def build_node(policy: Policy, pod: Pod,
               opts: SidecarOptions = SidecarOptions()) -> SidecarResources:
    """The resources only ``pod``'s sidecar gets: its inbound listener (its mTLS mode,
    its ports), app clusters and inbound routes (its access rules)."""
    r = SidecarResources()
    defects = opts.defect_set
    rbac = None if "authz-open" in defects else rbac_per_route(policy, pod, defects)
    ports = inbound_ports(pod, opts)
    for app, match in ports:
        ib = inbound_app_cluster(opts, app)
        r.clusters[ib["name"]] = ib
        if app.protocol != "tcp":
            ir = inbound_route(opts, rbac, app.port)
            r.routes[ir["name"]] = ir
    r.listeners[names.VIRTUAL_INBOUND] = virtual_inbound(
        workload_mtls(pod, policy, opts), opts, ports, network_rbac(policy, pod, defects))
    return r


def _route_by_host(reg: Registry, namespace: str, r: SidecarResources) -> None:
    """The ``route-by-host`` defect: every service port's route config also carries every
    other service's routes on the same port number under that service's host names, so
    the Host header, not the Service IP the request was sent to, picks the routes (what a
    mesh sharing one route table per port does; Gateway API's MeshFrontendHostname
    catches it)."""
    own = {names.route_name(svc, p.port): (svc, p.port) for svc in reg.services
           for p in svc.spec.ports if p.protocol != "tcp"}
    for name, rc in r.routes.items():
        if name not in own:
            continue  # an inbound route
        port = own[name][1]
        for other_name, (other, other_port) in own.items():
            if other_name == name or other_port != port:
                continue
            # The short name only in the caller's own namespace (as its resolver has it).
            hosts = [other.name] if other.namespace == namespace else []
            hosts += [f"{other.name}.{other.namespace}", f"{other.name}.{other.namespace}.svc",
                      other.spec.fqdn]
            rc["virtual_hosts"].append({
                "name": f"by-host|{other_name}",
                "domains": hosts + [f"{h}:{port}" for h in hosts],
                "routes": r.routes[other_name]["virtual_hosts"][0]["routes"]})


# --- clusters and endpoints -------------------------------------------------


def service_identities(reg: Registry, svc: Service) -> list[str]:
    """SPIFFE IDs of every meshed pod the service selects (ready or not: a pod
    becoming ready must not race its SAN into the config)."""
    return sorted({p.identity for p in reg.pods if svc.selects(p) and p.meshed})


def outlier_detection(o: OutlierDetection) -> dict[str, Any]:
    """Envoy's outlier detection for one service's cluster (consecutive 5xx only)."""
    return {"consecutive_5xx": o.consecutive_5xx, "interval": f"{o.interval_ms / 1000:.3f}s",
            "base_ejection_time": f"{o.base_ejection_ms / 1000:.3f}s",
            "max_ejection_percent": o.max_ejection_percent,
            "enforcing_consecutive_5xx": 100,
            # Only the consecutive-5xx detector: the others would eject on their own.
            "enforcing_success_rate": 0, "enforcing_consecutive_gateway_failure": 0}


def http2_options() -> dict[str, Any]:
    """Upstream HTTP/2 (h2c to the app, h2 inside mTLS between sidecars)."""
    return {HTTP_OPTIONS_KEY: {"@type": _HTTP_OPTIONS,
                               "explicit_http_config": {"http2_protocol_options": {}}}}


def outbound_cluster(reg: Registry, svc: Service, opts: SidecarOptions,
                     outlier: OutlierDetection | None = None,
                     port: ServicePort | None = None) -> dict[str, Any]:
    port = port or svc.spec.ports[0]
    name = names.outbound_cluster(svc, port.port)
    defects = opts.defect_set
    sans = None if "server-identity-unchecked" in defects else service_identities(reg, svc)
    h2 = port.protocol in H2_PROTOCOLS and "h2-downgraded" not in defects
    c: dict[str, Any] = {
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": ads_config_source(), "service_name": name},
        "connect_timeout": opts.connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "transport_socket_matches": [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
             "transport_socket": (tls.raw_buffer() if port.protocol == "tcp"
                                  and "tcp-upstream-plaintext" in defects
                                  else tls.upstream_mtls(
                 svc.spec.fqdn, sans, allow_expired="expired-cert-served" in defects,
                 alpn=["h2"] if h2 else None))},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": tls.raw_buffer()},
        ],
    }
    if h2:
        c["typed_extension_protocol_options"] = http2_options()
    if outlier is not None:
        c["outlier_detection"] = outlier_detection(outlier)
    return c


def load_assignment(reg: Registry, svc: Service, port: ServicePort | None = None,
                    keep_not_ready: bool = False) -> dict[str, Any]:
    """EDS for a service port: its ready pods; meshed ones marked for mTLS.
    ``keep_not_ready`` (the ``dead-endpoint-kept`` defect) lists every pod it selects,
    ready or not."""
    port = port or svc.spec.ports[0]
    lb = []
    pods = (sorted((p for p in reg.pods if svc.selects(p)), key=lambda p: p.name)
            if keep_not_ready else reg.endpoints(svc))
    for p in pods:
        ep: dict[str, Any] = {"endpoint": {"address": {"socket_address": {
            "address": p.ip, "port_value": port.target_port}}}}
        if p.meshed:
            ep["metadata"] = {"filter_metadata": {TLS_MODE_KEY: {"tlsMode": "istio"}}}
        lb.append(ep)
    return {"cluster_name": names.outbound_cluster(svc, port.port),
            "endpoints": [{"lb_endpoints": lb}] if lb else []}


def passthrough_cluster(opts: SidecarOptions) -> dict[str, Any]:
    return {"name": names.PASSTHROUGH, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
            "connect_timeout": opts.connect_timeout}


def inbound_ports(pod: Pod, opts: SidecarOptions) -> list[tuple[AppPort, int]]:
    """(app port, destination port the inbound chains match) for every port of the pod.

    The primary port follows ``opts`` (tests run a sidecar on loopback ports); the
    others are matched on their own number.
    """
    out = []
    for app in pod.app_ports:
        if app.port == pod.port:
            out.append((AppPort(opts.app_port, app.protocol), opts.inbound_match_port))
        else:
            out.append((app, app.port))
    return out


def inbound_app_cluster(opts: SidecarOptions, app: AppPort | None = None) -> dict[str, Any]:
    app = app or AppPort(opts.app_port)
    name = names.inbound_cluster(app.port)
    c: dict[str, Any] = {
        "name": name, "type": "STATIC", "connect_timeout": opts.connect_timeout,
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": opts.app_address, "port_value": app.port}}}}]}]}}
    if app.protocol in H2_PROTOCOLS and "h2-downgraded" not in opts.defect_set:
        c["typed_extension_protocol_options"] = http2_options()
    return c


# --- listeners ----------------------------------------------------------------


def _hcm(stat_prefix: str, filters: list[dict[str, Any]] | None = None,
         **extra: Any) -> dict[str, Any]:
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM, "stat_prefix": stat_prefix, "codec_type": "AUTO",
        "http_filters": [*(filters or []), ROUTER], **extra}}


def _tcp_proxy(stat_prefix: str, cluster: str) -> dict[str, Any]:
    return {"name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": TCP_PROXY, "stat_prefix": stat_prefix, "cluster": cluster}}


def service_listener(svc: Service, port: ServicePort | None = None,
                     opts: SidecarOptions = SidecarOptions()) -> dict[str, Any]:
    """VIP:port, not bound: virtualOutbound hands it connections by original destination.

    HTTP ports: an HCM (HTTP/2 accepted where the port declares http2/grpc; ``AUTO``
    also takes an h2c preface on an http port); tcp ports: a TCP proxy."""
    port = port or svc.spec.ports[0]
    # The primary port keeps the stat prefix it always had (dashboards and tests read it).
    prefix = (f"outbound_{svc.spec.fqdn}" if port.port == svc.spec.port
              else f"outbound_{port.port}_{svc.spec.fqdn}")
    if port.protocol == "tcp":
        filters = [_tcp_proxy(prefix,
                              names.outbound_cluster(svc, port.port))]
    else:
        extra: dict[str, Any] = {}
        if port.protocol in H2_PROTOCOLS:
            extra["http2_protocol_options"] = {}
        filters = [_hcm(prefix, [fault_filter()],
                        rds={"config_source": ads_config_source(),
                             "route_config_name": names.route_name(svc, port.port)}, **extra)]
    return {
        "name": names.service_listener(svc, port.port),
        "address": {"socket_address": {"address": svc.vip, "port_value": port.port}},
        "bind_to_port": False,
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{"filters": filters}],
    }


def virtual_outbound(opts: SidecarOptions) -> dict[str, Any]:
    return {
        "name": names.VIRTUAL_OUTBOUND,
        "address": {"socket_address": {"address": opts.bind_address, "port_value": opts.outbound_port}},
        "use_original_dst": True,
        "traffic_direction": "OUTBOUND",
        "filter_chains": [],
        "default_filter_chain": {"name": "passthrough", "filters": [{
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": TCP_PROXY, "stat_prefix": names.PASSTHROUGH,
                             "cluster": names.PASSTHROUGH}}]},
    }


def inbound_route(opts: SidecarOptions, rbac: dict[str, Any] | None = None,
                  app_port: int | None = None) -> dict[str, Any]:
    """The inbound route to the app's port; carries the access rules (RBACPerRoute) when
    enforced."""
    app_port = app_port or opts.app_port
    route: dict[str, Any] = {"name": "default", "match": {"prefix": "/"},
                             "route": {"cluster": names.inbound_cluster(app_port)}}
    if rbac is not None:
        route["typed_per_filter_config"] = {RBAC_FILTER: rbac}
    name = names.inbound_route(app_port)
    return {"name": name, "validate_clusters": False,
            "virtual_hosts": [{"name": "inbound", "domains": ["*"], "routes": [route]}]}


def _inbound_filters(app: AppPort, l4_rbac: dict[str, Any] | None,
                     defects: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The filters of one app port's inbound chains (the same for mTLS and plaintext)."""
    if app.protocol == "tcp":
        return [*([l4_rbac] if l4_rbac is not None else []),
                _tcp_proxy(f"inbound_{app.port}", names.inbound_cluster(app.port))]
    extra: dict[str, Any] = {"forward_client_cert_details": (
                                 "ALWAYS_FORWARD_ONLY" if "xfcc-forwarded" in defects
                                 else "SANITIZE_SET"),
                             "set_current_client_cert_details": {"uri": True}}
    if app.protocol in H2_PROTOCOLS:
        extra["http2_protocol_options"] = {}
        if "xfcc-h2-unset" in defects:
            # The defect: HTTP/2 ports' HCM built without the XFCC settings (Envoy's
            # default SANITIZE strips the header): the app never learns its caller.
            del extra["forward_client_cert_details"], extra["set_current_client_cert_details"]
    return [_hcm("inbound_" + str(app.port), [rbac_base_filter()],
                 rds={"config_source": ads_config_source(),
                      "route_config_name": names.inbound_route(app.port)}, **extra)]


def virtual_inbound(mode: MTLSModeValue, opts: SidecarOptions,
                    ports: list[tuple[AppPort, int]] | None = None,
                    l4_rbac: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inbound: mTLS always offered on every app port; plaintext only in PERMISSIVE;
    the RBAC filter always present on HTTP ports (rules come per route), the network
    RBAC filter on tcp ports when access rules are enforced."""
    defects = opts.defect_set
    ports = ports or [(AppPort(opts.app_port), opts.inbound_match_port)]
    chains = [{
        "name": f"inbound-mtls-{match}",
        "filter_chain_match": {"destination_port": match, "transport_protocol": "tls"},
        "filters": _inbound_filters(app, l4_rbac, defects),
        "transport_socket": tls.downstream_mtls(
            allow_expired="expired-cert-served" in defects,
            alpn="alpn-h2-unoffered" not in defects),
    } for app, match in ports]
    for i, (app, match) in enumerate(ports):
        # plaintext-other-port: STRICT refuses plaintext on the first (probed) port only.
        leak = "plaintext-other-port" in defects and i > 0
        if mode is MTLSModeValue.PERMISSIVE or "plaintext-accepted" in defects or leak:
            chains.append({
                "name": f"inbound-plaintext-{match}",
                "filter_chain_match": {"destination_port": match,
                                       "transport_protocol": "raw_buffer"},
                "filters": _inbound_filters(app, l4_rbac, defects),
            })
    return {
        "name": names.VIRTUAL_INBOUND,
        "address": {"socket_address": {"address": opts.bind_address, "port_value": opts.inbound_port}},
        "traffic_direction": "INBOUND",
        "listener_filters": [
            {"name": "envoy.filters.listener.original_dst", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}},
            {"name": "envoy.filters.listener.tls_inspector", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}},
        ],
        # No listener-level field may depend on the mode: a change outside the filter
        # chains makes Envoy drain the whole listener, killing callers' pooled mTLS
        # connections mid-request (a correct mesh 503ing on a mode change). Only the
        # plaintext chain comes and goes, so Envoy updates the filter chains in place.
        "filter_chains": chains,
    }
