"""Build one sidecar's listeners, clusters, endpoints and routes from (Registry, Policy).

Shape (as Istio / OSM program a sidecar):

- ``virtualOutbound`` on 0.0.0.0:15001, ``use_original_dst``: captured
  outbound connections are handed to the listener owning their original
  destination; anything else goes plaintext to ``PassthroughCluster``
  (ORIGINAL_DST).
- one ``VIP_80`` listener per service, ``bind_to_port: false``, HTTP with
  an RDS route (weighted clusters for a TrafficSplit).
- one EDS cluster per service ``outbound|80||name.ns.svc.cluster.local``;
  endpoints of meshed pods carry ``tlsMode: istio`` and get mTLS pinned to
  the service's SPIFFE IDs, other endpoints plaintext (Istio's auto mTLS
  via ``transport_socket_matches``).
- ``virtualInbound`` on 0.0.0.0:15006 (original_dst + tls_inspector): for
  the app port, STRICT = an mTLS chain only; PERMISSIVE = mTLS chain plus
  a plaintext chain. The inbound HCM sets ``x-forwarded-client-cert`` to
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
from meshproof.targets.model import APP_PORT, Pod, Registry, Service
from refmesh.bootstrap import ads_config_source
from refmesh.xds import names, tls
from refmesh.xds.authz import RBAC_FILTER, rbac_base_filter, rbac_per_route
from refmesh.xds.routes import DEFAULT_RETRY, fault_filter, route_config

__all__ = ["DEFAULT_RETRY", "SidecarOptions", "SidecarResources", "build_node", "build_shared",
           "build_sidecar", "route_config"]

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
TLS_MODE_KEY = "envoy.transport_socket_match"


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
    r = build_shared(reg, policy, opts)
    own = build_node(policy, pod, opts)
    for kind in ("listeners", "clusters", "endpoints", "routes"):
        getattr(r, kind).update(getattr(own, kind))
    return r


def build_shared(reg: Registry, policy: Policy,
                 opts: SidecarOptions = SidecarOptions()) -> SidecarResources:
    """The resources every sidecar with these options gets alike (the caller side:
    services' clusters, endpoints, routes and listeners, passthrough, the app cluster).

    Why split: the control plane builds this once per version for all sidecars
    instead of once per sidecar (the cost that grew with the sidecar count).
    """
    r = SidecarResources()
    defects = opts.defect_set
    splits = {s.service: s for s in policy.splits}
    retries = {x.service: x for x in policy.retries}
    timeouts = {x.service: x for x in policy.timeouts}
    faults = {x.service: x for x in policy.faults}
    outliers = {x.service: x for x in policy.outliers}
    index = PodIndex(reg)
    for svc in sorted(reg.services, key=lambda s: (s.namespace, s.name)):
        outlier = None if "outlier-not-programmed" in defects else outliers.get(svc.key)
        c = outbound_cluster(reg, svc, opts, outlier, index)
        r.clusters[c["name"]] = c
        e = load_assignment(reg, svc, keep_not_ready="dead-endpoint-kept" in defects,
                            index=index)
        r.endpoints[e["cluster_name"]] = e
        rt = route_config(reg, svc, splits.get(svc.key), retry=retries.get(svc.key),
                          timeout=timeouts.get(svc.key), fault=faults.get(svc.key),
                          defects=defects)
        r.routes[rt["name"]] = rt
        lst = service_listener(svc)
        r.listeners[lst["name"]] = lst
    pt = passthrough_cluster(opts)
    r.clusters[pt["name"]] = pt
    ib = inbound_app_cluster(opts)
    r.clusters[ib["name"]] = ib
    r.listeners[names.VIRTUAL_OUTBOUND] = virtual_outbound(opts)
    return r


def build_node(policy: Policy, pod: Pod,
               opts: SidecarOptions = SidecarOptions()) -> SidecarResources:
    """The resources only ``pod``'s sidecar gets: its inbound listener (its mTLS mode)
    and inbound route (its access rules)."""
    r = SidecarResources()
    defects = opts.defect_set
    rbac = None if "authz-open" in defects else rbac_per_route(policy, pod, defects)
    ir = inbound_route(opts, rbac)
    r.routes[ir["name"]] = ir
    r.listeners[names.VIRTUAL_INBOUND] = virtual_inbound(workload_mtls(pod, policy, opts), opts)
    return r


class PodIndex:
    """Pods by namespace, so selecting a service's pods costs its namespace, not the mesh
    (the per-service scan of every pod was quadratic in the lab's size)."""

    def __init__(self, reg: Registry) -> None:
        self.by_ns: dict[str, list[Pod]] = {}
        for p in reg.pods:
            self.by_ns.setdefault(p.namespace, []).append(p)

    def selected(self, svc: Service) -> list[Pod]:
        return [p for p in self.by_ns.get(svc.namespace, []) if svc.selects(p)]


# --- clusters and endpoints -------------------------------------------------


def service_identities(reg: Registry, svc: Service, index: PodIndex | None = None) -> list[str]:
    """SPIFFE IDs of every meshed pod the service selects (ready or not: a pod
    becoming ready must not race its SAN into the config)."""
    pods = index.selected(svc) if index else [p for p in reg.pods if svc.selects(p)]
    return sorted({p.identity for p in pods if p.meshed})


def outlier_detection(o: OutlierDetection) -> dict[str, Any]:
    """Envoy's outlier detection for one service's cluster (consecutive 5xx only)."""
    return {"consecutive_5xx": o.consecutive_5xx, "interval": f"{o.interval_ms / 1000:.3f}s",
            "base_ejection_time": f"{o.base_ejection_ms / 1000:.3f}s",
            "max_ejection_percent": o.max_ejection_percent,
            "enforcing_consecutive_5xx": 100,
            # Only the consecutive-5xx detector: the others would eject on their own.
            "enforcing_success_rate": 0, "enforcing_consecutive_gateway_failure": 0}


def outbound_cluster(reg: Registry, svc: Service, opts: SidecarOptions,
                     outlier: OutlierDetection | None = None,
                     index: PodIndex | None = None) -> dict[str, Any]:
    name = names.outbound_cluster(svc)
    defects = opts.defect_set
    sans = (None if "server-identity-unchecked" in defects
            else service_identities(reg, svc, index))
    c: dict[str, Any] = {
        "name": name,
        "type": "EDS",
        "eds_cluster_config": {"eds_config": ads_config_source(), "service_name": name},
        "connect_timeout": opts.connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "transport_socket_matches": [
            {"name": "tlsMode-istio", "match": {"tlsMode": "istio"},
             "transport_socket": tls.upstream_mtls(
                 svc.spec.fqdn, sans, allow_expired="expired-cert-served" in defects)},
            {"name": "tlsMode-disabled", "match": {}, "transport_socket": tls.raw_buffer()},
        ],
    }
    if outlier is not None:
        c["outlier_detection"] = outlier_detection(outlier)
    return c


def load_assignment(reg: Registry, svc: Service, keep_not_ready: bool = False,
                    index: PodIndex | None = None) -> dict[str, Any]:
    """EDS for a service: its ready pods; meshed ones marked for mTLS. ``keep_not_ready``
    (the ``dead-endpoint-kept`` defect) lists every pod it selects, ready or not."""
    lb = []
    selected = index.selected(svc) if index else [p for p in reg.pods if svc.selects(p)]
    pods = sorted((p for p in selected if keep_not_ready or p.ready), key=lambda p: p.name)
    for p in pods:
        ep: dict[str, Any] = {"endpoint": {"address": {"socket_address": {
            "address": p.ip, "port_value": svc.spec.target_port}}}}
        if p.meshed:
            ep["metadata"] = {"filter_metadata": {TLS_MODE_KEY: {"tlsMode": "istio"}}}
        lb.append(ep)
    return {"cluster_name": names.outbound_cluster(svc),
            "endpoints": [{"lb_endpoints": lb}] if lb else []}


def passthrough_cluster(opts: SidecarOptions) -> dict[str, Any]:
    return {"name": names.PASSTHROUGH, "type": "ORIGINAL_DST", "lb_policy": "CLUSTER_PROVIDED",
            "connect_timeout": opts.connect_timeout}


def inbound_app_cluster(opts: SidecarOptions) -> dict[str, Any]:
    name = names.inbound_cluster(opts.app_port)
    return {"name": name, "type": "STATIC", "connect_timeout": opts.connect_timeout,
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {
                    "address": opts.app_address, "port_value": opts.app_port}}}}]}]}}


# --- listeners ----------------------------------------------------------------


def _hcm(stat_prefix: str, filters: list[dict[str, Any]] | None = None,
         **extra: Any) -> dict[str, Any]:
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM, "stat_prefix": stat_prefix, "codec_type": "AUTO",
        "http_filters": [*(filters or []), ROUTER], **extra}}


def service_listener(svc: Service) -> dict[str, Any]:
    """VIP:port, not bound: virtualOutbound hands it connections by original destination."""
    return {
        "name": names.service_listener(svc),
        "address": {"socket_address": {"address": svc.vip, "port_value": svc.spec.port}},
        "bind_to_port": False,
        "traffic_direction": "OUTBOUND",
        "filter_chains": [{"filters": [_hcm(
            f"outbound_{svc.spec.fqdn}", [fault_filter()],
            rds={"config_source": ads_config_source(), "route_config_name": names.route_name(svc)})]}],
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


def inbound_route(opts: SidecarOptions, rbac: dict[str, Any] | None = None) -> dict[str, Any]:
    """The inbound route to the app; carries the access rules (RBACPerRoute) when enforced."""
    route: dict[str, Any] = {"name": "default", "match": {"prefix": "/"},
                             "route": {"cluster": names.inbound_cluster(opts.app_port)}}
    if rbac is not None:
        route["typed_per_filter_config"] = {RBAC_FILTER: rbac}
    name = names.inbound_route(opts.app_port)
    return {"name": name, "validate_clusters": False,
            "virtual_hosts": [{"name": "inbound", "domains": ["*"], "routes": [route]}]}


def virtual_inbound(mode: MTLSModeValue, opts: SidecarOptions) -> dict[str, Any]:
    """Inbound: mTLS always offered; plaintext only in PERMISSIVE; RBAC filter always
    present (rules come per route)."""
    defects = opts.defect_set
    hcm = _hcm("inbound_" + str(opts.app_port), [rbac_base_filter()],
               rds={"config_source": ads_config_source(),
                    "route_config_name": names.inbound_route(opts.app_port)},
               forward_client_cert_details=("ALWAYS_FORWARD_ONLY" if "xfcc-forwarded" in defects
                                            else "SANITIZE_SET"),
               set_current_client_cert_details={"uri": True})
    chains = [{
        "name": f"inbound-mtls-{opts.inbound_match_port}",
        "filter_chain_match": {"destination_port": opts.inbound_match_port, "transport_protocol": "tls"},
        "filters": [hcm],
        "transport_socket": tls.downstream_mtls(
            allow_expired="expired-cert-served" in defects),
    }]
    if mode is MTLSModeValue.PERMISSIVE or "plaintext-accepted" in defects:
        chains.append({
            "name": f"inbound-plaintext-{opts.inbound_match_port}",
            "filter_chain_match": {"destination_port": opts.inbound_match_port,
                                   "transport_protocol": "raw_buffer"},
            "filters": [hcm],
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
