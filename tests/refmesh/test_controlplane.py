"""Control plane against a real Envoy: push, ACK, mTLS modes on real traffic, NACK, restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import os

import pytest

from meshproof.intent import MTLSMode, Policy
from meshproof.targets.model import spiffe_id
from refmesh import unixhttp
from refmesh.admin import EnvoyAdmin
from refmesh.controlplane import nacks, pending, programmed
from refmesh.state import registry_to_dict

from .conftest import Procs, free_port, wait_for, wait_socket
from .helpers import EchoApp, client_credentials, mtls_get, plain_get, start_agent, start_sidecar
from .registry_fixture import small_registry

NODE = "bookinfo/productpage-v1-0"
UID = 1337  # its proxy uid in small_registry


@pytest.fixture
def app() -> Any:
    a = EchoApp()
    try:
        yield a
    finally:
        a.close()


def start_cp(procs: Procs, d: Path, name: str = "cp") -> tuple[Path, Path]:
    ads, api = d / "ads.sock", d / "cp-api.sock"
    procs.python(name, "refmesh.controlplane", "--ads-socket", str(ads), "--api-socket", str(api),
                 "--state-dir", str(d / "cp-state"))
    wait_socket(api)
    return ads, api


def put(api: Path, path: str, body: dict[str, Any]) -> int:
    st, out = unixhttp.request_json(api, "PUT", path, body)
    assert st == 200, out
    return int(out["version"])


def status(api: Path) -> dict[str, Any]:
    return unixhttp.request_json(api, "GET", "/status")[1]  # type: ignore[no-any-return]


def wait_programmed(api: Path, admin: EnvoyAdmin, version: int, timeout: float = 15) -> None:
    wait_for(lambda: programmed(status(api), version, [NODE]) and admin.warming() == 0, timeout,
             f"{NODE} programmed at {version} (pending: {pending(status(api), version, [NODE])})")


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the sidecar as its proxy uid (needs root)")
def test_cp_programs_envoy_mtls_modes_nack_and_restart(
        ca: Path, procs: Procs, sockdir: Path, envoy_bin: str, app: EchoApp) -> None:
    inbound = free_port()
    ads, api = start_cp(procs, sockdir)
    v1 = put(api, "/state", {
        "registry": registry_to_dict(small_registry()),
        "policy": Policy().to_dict(),
        "options": {"bind_address": "127.0.0.1", "outbound_port": free_port(),
                    "inbound_port": inbound, "inbound_match_port": inbound, "app_port": app.port},
    })
    # The sidecar runs as its pod's proxy uid (small_registry: 1337): the only uid the
    # control plane lets claim the node.
    sds = start_agent(procs, sockdir, ca, "bookinfo", "productpage", "pp", "--proxy-uid", str(UID))
    admin = start_sidecar(procs, envoy_bin, sockdir, NODE, ads, sds, uid=UID)
    wait_programmed(api, admin, v1)
    assert admin.ready()

    # PERMISSIVE (default): plaintext and mTLS both reach the app; the app sees the caller's ID.
    creds = client_credentials(ca, sockdir, "bookinfo", "client")
    assert plain_get(inbound) == 200
    st, body, server_id = mtls_get(inbound, creds)
    assert st == 200 and server_id == spiffe_id("bookinfo", "productpage")
    assert f'URI={spiffe_id("bookinfo", "client")}' in body["xfcc"]

    # STRICT for the workload: plaintext refused, mTLS still served.
    v2 = put(api, "/policy", Policy(mtls=(MTLSMode("STRICT", "bookinfo", "productpage-v1"),)).to_dict())
    assert v2 == v1 + 1
    wait_programmed(api, admin, v2)
    assert plain_get(inbound) in ("reset", "closed")
    assert mtls_get(inbound, creds)[0] == 200
    # Unchanged input: no new version, no push.
    assert put(api, "/policy", Policy(mtls=(MTLSMode("STRICT", "bookinfo", "productpage-v1"),)).to_dict()) == v2

    # A config Envoy rejects (a VIP that is not an IP) comes back as a NACK with Envoy's message.
    reg = small_registry()
    reg.services[1] = dataclasses.replace(reg.services[1], vip="not-an-ip")
    v3 = put(api, "/registry", registry_to_dict(reg))
    wait_for(lambda: nacks(status(api)), 10, "a NACK in /status")
    nack = nacks(status(api))[f"{NODE} lds"]
    assert nack["version"] == v3 and "not-an-ip" in nack["message"], nack
    assert not programmed(status(api), v3, [NODE])
    assert "NACK" in pending(status(api), v3, [NODE])[NODE]
    # ... and the last good config keeps serving.
    assert plain_get(inbound) in ("reset", "closed")
    assert mtls_get(inbound, creds)[0] == 200

    # Fix it; then a restarted control plane serves the same version from its state dir.
    v4 = put(api, "/registry", registry_to_dict(small_registry()))
    wait_programmed(api, admin, v4)
    assert not nacks(status(api))
    cfg = unixhttp.request_json(api, "GET", f"/config/{NODE}")[1]
    assert cfg["version"] == v4 and {lst["name"] for lst in cfg["listeners"]} >= {"virtualInbound"}

    cp = next(p for n, p in procs.procs if n == "cp")
    procs.stop(cp)
    start_cp(procs, sockdir, "cp-restarted")
    assert unixhttp.request_json(api, "GET", "/healthz")[1]["version"] == v4
    wait_for(lambda: status(api)["nodes"].get(NODE, {}).get("connected"), 20, "Envoy to reconnect")
    wait_programmed(api, admin, v4, timeout=20)
    assert mtls_get(inbound, creds)[0] == 200
