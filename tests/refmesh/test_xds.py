"""Per-sidecar xDS resources: structure checks and offline validation by the real Envoy."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshproof.intent import MTLSMode, Policy, TrafficSplit
from refmesh.bootstrap import SidecarPaths, bootstrap
from refmesh.xds import build_sidecar, names, proto
from refmesh.xds.static import static_bootstrap

from .helpers import envoy_validate
from .registry_fixture import small_registry

REG = small_registry()
PP = REG.pods[0]
SPLIT = TrafficSplit("bookinfo/reviews", (("reviews-v1", 90), ("reviews-v2", 10)))


def inbound_chains(res) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {c["filter_chain_match"]["transport_protocol"]: c
            for c in res.listeners[names.VIRTUAL_INBOUND]["filter_chains"]}


def test_strict_inbound_has_only_the_mtls_chain() -> None:
    res = build_sidecar(REG, Policy(mtls=(MTLSMode("STRICT", "bookinfo"),)), PP)
    chains = inbound_chains(res)
    assert set(chains) == {"tls"}
    tls = chains["tls"]["transport_socket"]["typed_config"]
    assert tls["require_client_certificate"] is True
    hcm = chains["tls"]["filters"][0]["typed_config"]
    assert hcm["forward_client_cert_details"] == "SANITIZE_SET"
    assert hcm["set_current_client_cert_details"] == {"uri": True}


def test_permissive_inbound_adds_plaintext_and_workload_beats_namespace() -> None:
    pol = Policy(mtls=(MTLSMode("STRICT", "bookinfo"),
                       MTLSMode("PERMISSIVE", "bookinfo", "productpage-v1")))
    assert set(inbound_chains(build_sidecar(REG, pol, PP))) == {"tls", "raw_buffer"}
    assert set(inbound_chains(build_sidecar(REG, Policy(), PP))) == {"tls", "raw_buffer"}


def test_upstream_mtls_pins_destination_identities_and_plaintext_for_unmeshed() -> None:
    res = build_sidecar(REG, Policy(), PP)
    c = res.clusters["outbound|80||reviews.bookinfo.svc.cluster.local"]
    tls_match = c["transport_socket_matches"][0]
    ctx = tls_match["transport_socket"]["typed_config"]["common_tls_context"]
    sans = ctx["combined_validation_context"]["default_validation_context"]["match_typed_subject_alt_names"]
    assert [s["matcher"]["exact"] for s in sans] == ["spiffe://cluster.local/ns/bookinfo/sa/reviews"]
    assert ctx["tls_params"]["tls_maximum_protocol_version"] == "TLSv1_3"
    meshed_ep = res.endpoints["outbound|80||reviews.bookinfo.svc.cluster.local"]["endpoints"][0]["lb_endpoints"]
    assert all(e["metadata"]["filter_metadata"]["envoy.transport_socket_match"] == {"tlsMode": "istio"}
               for e in meshed_ep)
    plain_ep = res.endpoints["outbound|80||echo.outside.svc.cluster.local"]["endpoints"][0]["lb_endpoints"]
    assert "metadata" not in plain_ep[0]


def test_split_becomes_weighted_clusters() -> None:
    res = build_sidecar(REG, Policy(splits=(SPLIT,)), PP)
    action = res.routes["reviews.bookinfo.svc.cluster.local:80"]["virtual_hosts"][0]["routes"][0]["route"]
    assert action["weighted_clusters"]["clusters"] == [
        {"name": "outbound|80||reviews-v1.bookinfo.svc.cluster.local", "weight": 90},
        {"name": "outbound|80||reviews-v2.bookinfo.svc.cluster.local", "weight": 10}]
    lst = res.listeners["198.19.0.11_80"]
    assert lst["bind_to_port"] is False
    assert res.listeners[names.VIRTUAL_OUTBOUND]["use_original_dst"] is True


def test_every_resource_parses_as_its_proto() -> None:
    res = build_sidecar(REG, Policy(splits=(SPLIT,)), PP)
    for type_url, (_, attr) in proto.TYPES.items():
        for d in getattr(res, attr).values():
            proto.to_any(type_url, d)


_validate = envoy_validate


@pytest.mark.parametrize("mode", ["STRICT", "PERMISSIVE"])
def test_envoy_validates_generated_sidecar_config(envoy_bin: str, sockdir: Path, mode: str) -> None:
    pol = Policy(mtls=(MTLSMode(mode),), splits=(SPLIT,))
    res = build_sidecar(REG, pol, PP)
    paths = SidecarPaths(str(sockdir / "ads"), str(sockdir / "sds"), str(sockdir / "admin"))
    _validate(envoy_bin, static_bootstrap(res, PP.key, paths), sockdir / "static.json")


def test_envoy_validates_dynamic_bootstrap(envoy_bin: str, sockdir: Path) -> None:
    paths = SidecarPaths(str(sockdir / "ads"), str(sockdir / "sds"), str(sockdir / "admin"))
    _validate(envoy_bin, bootstrap(PP.key, paths), sockdir / "bootstrap.json")
