"""Conformance: "programmed" means in force, for a change that takes a sidecar a while.

Every other check samples after ``wait_programmed``; if a mesh says "programmed"
before its proxies apply a change, those checks would judge the old config.
Small changes apply in milliseconds and hide an early signal, so this check
applies one that is measurably slow to apply: an access rule whose route list
carries FILLER extra path rules (the destination's proxy builds an RBAC policy
with a compiled regex for each), then sends one request the moment the mesh
says programmed, in both directions (rule added: allowed; removed: denied).

Error rates. A correct mesh: 0, by construction (the request leaves after the
mesh saw the proxy apply the change; what remains is the proxy handing the new
config to its worker threads, microseconds, against the tens of milliseconds a
probe takes to start). A mesh whose ACK is reported on send (``acked-on-send``):
with the ACK method alone (``--mesh reference-acked``, as ACK-based adapters such
as Istio's syncz decide), 13 of 24 requests right after "programmed" saw the old
behaviour here (FILLER 300, 2 cores shared with other labs): at p = 0.54 per
toggle, 2 x ROUNDS = 16 toggles all passing has probability 0.46^16 = 4e-6.
FILLER is 2000 since the control plane pushes only the changed route (issue 16):
a 300-rule change then applied before the probe's first request even under the
defect (0 of 16 stale); with 2000, 8 of 16 were stale (p = 0.5 per toggle,
0.5^16 = 1.5e-5 to pass all). The reference adapter now decides by the control plane's ACKs too (warming inferred
from the order of ACKs on each stream, no Envoy read: the mesh's control plane), so
the defect shows in ``--mesh reference`` as in ``reference-acked``; the black
box decides by the sentinel, which travels with the change, so an ACK cannot
fool it: there the check proves the sentinel method waits for a slow change.
"""

from __future__ import annotations

import pytest

from meshproof.conformance.check import check
from meshproof.conformance.pods import client, echo
from meshproof.intent import AccessMode, AccessRule, HTTPMatch
from meshproof.probe import all_denied, denial_evidence, send

pytestmark = [pytest.mark.mesh]

ECHO_B = "http://echo.team-b/echo"
#: Extra path rules that make the change slow to apply (a compiled regex each).
FILLER = 2000
#: Add/remove toggles: 2 x ROUNDS requests, each sent right after "programmed".
ROUNDS = 8


def slow_rule() -> AccessRule:
    routes = (HTTPMatch(path_regex="/echo"),) + tuple(
        HTTPMatch(path_regex=f"/meshproof-filler/{i}/[a-z]+") for i in range(FILLER))
    return AccessRule("team-b/allow-team-a-slow", "team-b/echo", ("team-a/client",),
                      routes=routes)


@check("programmed-means-in-force",
       f"a change slow to apply (an access rule with {FILLER} extra path rules) is in force "
       "for the first request sent after the mesh says programmed: allowed right after the "
       f"rule is added, denied right after it is removed, {ROUNDS} times each",
       features=["access-control-routes"], catches=["acked-on-send"],
       intents=["AccessMode", "AccessRule"])
def test_programmed_means_in_force(target, mesh, verdict):
    a, b = client(target, "team-a"), echo(target, "team-b")
    verdict.touch(b)
    mesh.wait_programmed(mesh.apply(AccessMode("smi", namespace="team-b")))
    before = send(target, a, ECHO_B, 1)
    rule = slow_rule()
    seen: list[tuple[str, str, float]] = []
    for _ in range(ROUNDS):
        took = mesh.wait_programmed(mesh.apply(rule), timeout=30)
        seen.append(("added", send(target, a, ECHO_B, 1)[0].outcome, took))
        took = mesh.wait_programmed(mesh.remove(rule), timeout=30)
        seen.append(("removed", send(target, a, ECHO_B, 1)[0].outcome, took))
    stale = [(what, outcome) for what, outcome, _ in seen
             if (outcome == "200") != (what == "added")]
    ok = [verdict.exact("denied before the rule (positive control for the deny side)",
                        all_denied(before), denial_evidence(before)),
          verdict.exact(f"every request right after programmed saw the change "
                        f"({len(seen) - len(stale)}/{len(seen)})", not stale,
                        {"stale": stale, "outcomes": [s[:2] for s in seen],
                         "programmed_s": [round(s[2], 3) for s in seen]})]
    assert all(ok), verdict.lines
