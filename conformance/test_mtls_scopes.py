"""Conformance: mTLS mode precedence between the mesh-wide and a namespace's mode.

Workload over namespace is checked in both directions in test_mtls.py; this is
the next rung: a namespace's mode beats the mesh-wide mode, in both directions,
while the mesh-wide mode still holds in the namespaces that set none.
"""

from __future__ import annotations

import pytest

from meshproof.conformance.check import check
from meshproof.conformance.pods import OUTSIDE, client, echo
from meshproof.intent import MTLSMode
from meshproof.probe import all_denied, all_ok, denial_evidence, send, summary

pytestmark = [pytest.mark.mesh]

N = 10


@check("mtls-namespace-over-mesh",
       "a namespace's mode beats the mesh-wide one in both directions: under mesh STRICT, "
       "a PERMISSIVE namespace accepts plaintext while another namespace refuses it; under "
       "mesh PERMISSIVE, a STRICT namespace refuses plaintext while another accepts it",
       features=["mtls-strict", "mtls-permissive"],
       catches=["namespace-mode-ignored", "mesh-mode-ignored"],
       intents=["MTLSMode"])
def test_namespace_mode_beats_mesh_mode(target, mesh, verdict):
    out, a = client(target, OUTSIDE), client(target, "team-a")
    b, c = echo(target, "team-b"), echo(target, "team-c")
    verdict.touch(b, c)
    ok = []
    for mesh_mode, ns_mode in (("STRICT", "PERMISSIVE"), ("PERMISSIVE", "STRICT")):
        mesh.wait_programmed(mesh.apply_all([MTLSMode(mesh_mode),
                                             MTLSMode(ns_mode, namespace="team-b")]))
        plain_b = send(target, out, "http://echo.team-b/echo", N, timeout_s=2)
        plain_c = send(target, out, "http://echo.team-c/echo", N, timeout_s=2)
        meshed = send(target, a, "http://echo.team-b/echo", N) \
            + send(target, a, "http://echo.team-c/echo", N)
        ok.append(verdict.exact(f"mesh {mesh_mode} - meshed callers accepted (positive "
                                "control)", all_ok(meshed), summary(meshed)))
        for ns, results, mode in (("team-b", plain_b, ns_mode), ("team-c", plain_c, mesh_mode)):
            if mode == "STRICT":
                ok.append(verdict.exact(f"mesh {mesh_mode}, {ns} {mode} - plaintext refused",
                                        all_denied(results), denial_evidence(results)))
            else:
                ok.append(verdict.exact(f"mesh {mesh_mode}, {ns} {mode} - plaintext accepted",
                                        all_ok(results), summary(results)))
    assert all(ok), verdict.lines
