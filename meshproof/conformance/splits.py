"""Judging traffic splits, however they were stated (SMI intent or GAMMA HTTPRoute).

``MARGIN``: a split off by 10 points (e.g. 80/20 for 90/10) must fail;
weight-0 and weight-100 backends are zero-tolerance within the same sample.
"""

from __future__ import annotations

from typing import Any

from meshproof.intent import Intent
from meshproof.mesh.base import MeshAdapter
from meshproof.probe import send, summary
from meshproof.targets.base import Target
from meshproof.targets.model import Pod
from meshproof.verdict.judgement import Verdict
from meshproof.verdict.stats import design, multi_design

REVIEWS = "http://reviews/reviews/0"
MARGIN = 0.10
#: A mesh leaking 5% of matching requests away from their backend must fail.
LEAK = 0.05
#: Requests just outside a match (boundary values): a mesh that sends 3/4 or more of them
#: into the split (1/6 not v3 instead of 2/3) must fail; a whole-match bug sends all.
#: design(2/3, 0.5): n = 50 each, both error rates <= 1e-4.
NEAR_MARGIN = 0.5


def source(target: Target) -> Pod:
    """Where split checks send from: bookinfo's client."""
    return target.pod("bookinfo", "client")


def judge_weights(target: Target, mesh: MeshAdapter, verdict: Verdict, intents: list[Intent],
                  weights: dict[str, int], *, url: str = REVIEWS,
                  protocol: str = "http", fresh: bool = True) -> None:
    """Apply ``intents`` (one version), sample once, judge each backend's share.

    ``url``/``protocol``: what the sample sends (default HTTP/1.1 to reviews; a gRPC
    split sends ``protocol="grpc"`` to the service's gRPC port). ``fresh=False`` pools
    connections: right for HTTP/2 and gRPC, whose calls share a connection and are
    routed one by one (the mesh picks a backend per request, not per connection)."""
    mesh.wait_programmed(mesh.apply_all(intents))
    src = source(target)
    verdict.touch(src)
    designs = multi_design(weights, MARGIN)
    n = next(iter(designs.values())).n
    results = send(target, src, url, n, protocol=protocol, fresh=fresh)
    ev = summary(results)
    verdict.note(f"sent {n}, answered by {ev['by_backend']}")
    oks = [verdict.judge(f"reviews-{v}", d, ev["by_backend"].get(v, 0), ev)
           for v, d in designs.items()]
    assert all(oks), verdict.lines


def judge_match(target: Target, mesh: MeshAdapter, verdict: Verdict, intents: list[Intent],
                matching: dict[str, Any], other: dict[str, Any],
                near: dict[str, dict[str, Any]] | None = None) -> None:
    """Matching requests all go to v3; the rest keep the root service (v1/v2/v3).

    ``near``: labelled requests just outside the match (a longer or shorter value,
    another case, the header absent), each judged like ``other`` with
    :data:`NEAR_MARGIN`: a mesh that sends them into the split fails."""
    mesh.wait_programmed(mesh.apply_all(intents))
    src = source(target)
    verdict.touch(src)
    only = design(1.0, LEAK)
    hit = send(target, src, matching["url"], only.n, headers=matching.get("headers"))
    ev_hit = summary(hit)
    oks = [verdict.judge("matching -> v3", only, ev_hit["by_backend"].get("v3", 0), ev_hit)]
    # Non-matching requests are balanced over three versions: 2/3 not v3. A
    # mesh ignoring the match sends them all to v3 (0 not v3): margin 0.3.
    for label, req, margin in [("non-matching", other, 0.3),
                               *((k, v, NEAR_MARGIN) for k, v in (near or {}).items())]:
        rest = design(2 / 3, margin)
        miss = send(target, src, req["url"], rest.n, headers=req.get("headers"))
        ev_miss = summary(miss)
        not_v3 = sum(n for v, n in ev_miss["by_backend"].items() if v != "v3")
        oks.append(verdict.judge(f"{label} -> not only v3", rest, not_v3, ev_miss))
    assert all(oks), verdict.lines
