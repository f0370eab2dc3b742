"""The short-cert-ttl capability on the reference mesh: while inside, every sidecar serves
a certificate of that lifetime and gets a new one before it expires; on exit the default
lifetime is back; a run killed inside leaves a record that the next adapter undoes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshproof.mesh.refpaths import CERT_TTL, sidecar_dir

pytestmark = [pytest.mark.lab, pytest.mark.mesh]

ROOT = Path(__file__).resolve().parents[2]
TTL = 4


def svid(pod) -> dict:
    return json.loads((sidecar_dir(pod.namespace, pod.name) / "keys" / "svid.json").read_text())


def lifetime_left(pod) -> float:
    end = dt.datetime.fromisoformat(svid(pod)["not_after"])
    return (end - dt.datetime.now(dt.timezone.utc)).total_seconds()


def test_short_ttl_is_served_rotated_and_undone(lab, mesh):
    meshed = [p for p in lab.pods() if p.meshed]
    assert "short-cert-ttl" in mesh.capabilities()
    with mesh.short_cert_ttl(TTL):
        assert json.loads(CERT_TTL.read_text())["ttl_s"] == TTL
        # Every sidecar's agent issued under the setting (X.509 times are whole seconds).
        assert all(lifetime_left(p) <= TTL + 1 for p in meshed)
        gens = {p.key: svid(p)["generation"] for p in meshed}
        time.sleep(TTL * 0.75)  # renewal at half life: every agent renewed by now
        assert all(svid(p)["generation"] > gens[p.key] for p in meshed)
    assert not CERT_TTL.exists()
    assert all(lifetime_left(p) > 60 for p in meshed)


def test_killed_runs_short_ttl_is_undone_by_the_next_adapter(lab, mesh):
    """A process that dies inside the context (SIGKILL: no finally) leaves the setting
    and its record; the next adapter built on this lab sets the default back."""
    code = ("import os, signal\n"
            "from meshproof.targets.local.client import LocalTarget\n"
            "from meshproof.mesh.reference import ReferenceMesh\n"
            "m = ReferenceMesh(LocalTarget.attach())\n"
            f"with m.short_cert_ttl({TTL}):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    cp = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120)
    assert cp.returncode == -9
    assert json.loads(CERT_TTL.read_text())["ttl_s"] == TTL
    client = lab.pod("team-a", "client")
    assert lifetime_left(client) <= TTL + 1
    from meshproof.mesh.reference import ReferenceMesh

    ReferenceMesh(lab)
    assert not CERT_TTL.exists()
    assert lifetime_left(client) > 60
