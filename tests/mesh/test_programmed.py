"""Programmed, as the control plane decides it from its own nonces, is true on the wire.

The adapter no longer looks at any sidecar: the control plane answers the wait
from the ACKs on each ADS stream (warming inferred from their order, see
``refmesh.controlplane``). These tests check that inference against Envoy's
own view at the moment the wait returns (every sidecar runs the new config,
nothing warming), for a change of each kind (RDS only, LDS, CDS), that a
change is pushed only as the xDS types it touches, and ``meshproof mesh
status`` as a user types it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meshproof.intent import MTLSMode, OutlierDetection, TrafficSplit
from meshproof.mesh.refpaths import admin_socket

pytestmark = [pytest.mark.lab, pytest.mark.mesh]
ROOT = Path(__file__).resolve().parents[2]


def _admins(mesh: Any) -> dict[str, Any]:
    from refmesh.admin import EnvoyAdmin

    return {p.key: EnvoyAdmin(admin_socket(p.namespace, p.name), timeout=5)
            for p in mesh.sidecars}


def _pushes(mesh: Any) -> dict[tuple[str, str], int]:
    st = mesh.status()["nodes"]
    return {(n, t): ts["pushes"] for n, ns in st.items() for t, ts in ns["types"].items()}


def _weights(route_config: dict[str, Any]) -> list[tuple[str, int]]:
    return [(x["name"], int(x.get("weight", 0))) for vh in route_config["virtual_hosts"]
            for rt in vh["routes"] for x in rt.get("route", {}).get("weighted_clusters", {})
            .get("clusters", [])]


def _route_weights(dump: dict[str, Any], route: str) -> list[tuple[str, int]]:
    """The weighted clusters of ``route`` in the config Envoy runs."""
    return next((_weights(r["route_config"]) for c in dump["configs"]
                 for r in c.get("dynamic_route_configs", [])
                 if r["route_config"]["name"] == route), [])


def test_programmed_means_every_sidecar_runs_it(lab, mesh):
    """Right when the wait returns, every sidecar serves the new config and nothing warms:
    a split (RDS only), a mesh-wide STRICT (LDS) and outlier detection (CDS)."""
    admins = _admins(mesh)
    fqdn = "reviews.bookinfo.svc.cluster.local"
    route, cluster = f"{fqdn}:80", f"outbound|80||{fqdn}"
    try:
        for weights in ((100, 0), (0, 100)):
            before = _pushes(mesh)
            mesh.wait_programmed(mesh.apply(TrafficSplit(
                "bookinfo/reviews", (("reviews-v1", weights[0]), ("reviews-v2", weights[1])))))
            for key, admin in admins.items():
                assert admin.warming() == 0, key
                sent = next(r for r in mesh.cp.request("GET", f"/config/{key}")["routes"]
                            if r["name"] == route)
                assert _weights(sent) and _route_weights(admin.config_dump(), route) \
                    == _weights(sent), key
            after = _pushes(mesh)
            # Incremental: a split is one route; only RDS goes out, once per sidecar.
            changed = {k for k in after if after[k] != before.get(k)}
            assert changed == {(k, "rds") for k in admins}, sorted(changed)[:6]
        mesh.wait_programmed(mesh.apply(MTLSMode("STRICT")))
        for key, admin in admins.items():
            assert admin.warming() == 0, key
            chains = [fc.get("name") for c in admin.config_dump()["configs"]
                      for ls in [c.get("dynamic_listeners", [])] for x in ls
                      if x["name"] == "virtualInbound"
                      for fc in x["active_state"]["listener"]["filter_chains"]]
            assert chains and not any("plaintext" in (n or "") for n in chains), (key, chains)
        mesh.wait_programmed(mesh.apply(OutlierDetection("bookinfo/reviews")))
        for key, admin in admins.items():
            assert admin.warming() == 0, key
            clusters = [x["cluster"] for c in admin.config_dump()["configs"]
                        for x in c.get("dynamic_active_clusters", [])]
            rv = [c for c in clusters if c["name"] == cluster]
            assert rv and "outlier_detection" in rv[0], key
    finally:
        mesh.wait_programmed(mesh.reset())


def test_mesh_status_as_typed(lab, mesh):
    """``meshproof mesh status`` in a fresh process: every sidecar listed, all in sync (0);
    ``--json`` is the control plane's syncz document."""
    mesh.wait_programmed(mesh.reset())
    cmd = [sys.executable, "-m", "meshproof.cli", "mesh", "status"]
    cp = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60,
                        env=dict(os.environ))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    for p in mesh.sidecars:
        assert p.key in cp.stdout
    assert "all in sync" in cp.stdout
    js = subprocess.run([*cmd, "--json"], cwd=ROOT, capture_output=True, text=True,
                        timeout=60, env=dict(os.environ))
    assert js.returncode == 0, js.stderr
    doc = json.loads(js.stdout)
    assert {r["node"] for r in doc["sidecars"]} == {p.key for p in mesh.sidecars}
    assert all(r["state"] == "SYNCED" for r in doc["sidecars"])
