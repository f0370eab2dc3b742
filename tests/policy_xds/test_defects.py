"""Each xDS defect, injected into the running lab, breaks the behaviour it names on real traffic.

Cheap by design: one lab for the package; a defect is switched on through the
control plane's state option ``{"defects": [ID]}`` (what ``meshproof up
--defect ID`` sets at install, see reference_local.program_defect), every
sidecar is waited on, and the option is always restored. The healthy
counterpart of each test is in test_policy_traffic.py.

Not here (need a forged or expired certificate; covered by the confinement
tests in tests/refmesh and by the conformance checks):
server-identity-unchecked, expired-cert-served.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from meshproof.intent import (AccessMode, AccessRule, HTTPMatch, MTLSMode, Retry, Timeout,
                              TrafficSplit)
from meshproof.mesh.base import Token
from meshproof.mesh.refpaths import CP_API_SOCKET
from meshproof.results import statuses
from refmesh import unixhttp
from refmesh.xds.defects import SLOW_PROXY_DELAY_MS

from meshproof.verdict.stats import design

pytestmark = [pytest.mark.lab, pytest.mark.mesh]

ECHO_B = "http://echo.team-b"


def _set_defects(mesh, defects: list[str]) -> None:  # type: ignore[no-untyped-def]
    _, state = unixhttp.request_json(CP_API_SOCKET, "GET", "/state", timeout=5)
    options = {**state["options"], "defects": defects}
    status, answer = unixhttp.request_json(CP_API_SOCKET, "PUT", "/state",
                                           {"options": options}, timeout=5)
    assert status == 200, answer
    mesh.wait_programmed(Token(mesh.name, int(answer["version"])))


@contextmanager
def injected(mesh, defect: str) -> Iterator[None]:  # type: ignore[no-untyped-def]
    _set_defects(mesh, [defect])
    try:
        yield
    finally:
        _set_defects(mesh, [])


def _versions(ans: dict) -> Counter:  # type: ignore[type-arg]
    return Counter(r["headers"].get("x-version", f"error:{r['status']}") for r in ans["results"])


def test_weights_ignored_fails_the_90_10_band(lab, mesh):
    d = design(0.10, 0.40)  # a 50/50 mesh lands in [lo, hi] with P <= 1e-4
    n, lo, hi = d.n, d.lo, d.hi
    mesh.wait_programmed(mesh.apply(TrafficSplit(
        "bookinfo/reviews", (("reviews-v1", 90), ("reviews-v2", 10)))))
    with injected(mesh, "weights-ignored"):
        seen = _versions(lab.probe_raw("bookinfo/client-0", {"url": "http://reviews/reviews/0",
                                                         "count": n, "concurrency": 4}))
    assert not lo <= seen["v2"] <= hi, seen


def test_match_ignored_sends_unmatched_requests_to_v3(lab, mesh):
    mesh.wait_programmed(mesh.apply(TrafficSplit(
        "bookinfo/reviews-v1", (("reviews-v3", 100),),
        match=HTTPMatch(headers=(("end-user", "jason"),)))))
    with injected(mesh, "match-ignored"):
        seen = _versions(lab.probe_raw("bookinfo/client-0", {"url": "http://reviews-v1/reviews/0",
                                                         "count": 5}))
    assert seen == {"v3": 5}, seen


def test_retries_dropped_gives_one_attempt(lab, mesh):
    mesh.wait_programmed(mesh.apply(Retry("team-b/echo", 2, retry_on=("5xx",))))
    with injected(mesh, "retries-dropped"):
        lab.probe_raw("team-a/client-0", {"url": f"{ECHO_B}/counter/reset", "method": "POST"})
        assert statuses(lab.probe_raw("team-a/client-0",
                                  {"url": f"{ECHO_B}/flaky/dropped?fail=100"})) == [503]
        ans = lab.probe_raw("team-a/client-0", {"url": f"{ECHO_B}/counter/dropped"})
    assert ans["results"][0]["body"]["attempts"] == 1, ans


def test_timeouts_dropped_waits_for_the_app(lab, mesh):
    mesh.wait_programmed(mesh.apply(Timeout("team-b/echo", 300)))
    with injected(mesh, "timeouts-dropped"):
        ans = lab.probe_raw("team-a/client-0", {"url": f"{ECHO_B}/delay/600"})
    r = ans["results"][0]
    assert r["status"] == 200 and r["latency_us"] >= 600_000, r


def test_authz_open_lets_team_c_in(lab, mesh):
    mesh.wait_programmed(mesh.apply_all([
        AccessMode("smi", "team-b"),
        AccessRule("team-b/a-to-echo", "team-b/echo", ("team-a/client",))]))
    with injected(mesh, "authz-open"):
        ans = lab.probe_raw("team-c/client-0", {"url": f"{ECHO_B}/echo", "count": 3})
    assert statuses(ans) == [200] * 3, ans


def test_plaintext_accepted_under_strict(lab, mesh):
    mesh.wait_programmed(mesh.apply(MTLSMode("STRICT", namespace="team-b")))
    with injected(mesh, "plaintext-accepted"):
        ans = lab.probe_raw("outside/client-0", {"url": f"{ECHO_B}/echo", "count": 3,
                                             "timeout_s": 2})
    assert statuses(ans) == [200] * 3, ans


def test_slow_proxy_adds_its_delay_to_every_request(lab, mesh):
    """Median latency of 30 pooled requests rises by at least 80 % of the defect's delay
    (3 ms; the healthy median here is ~1 ms, its run-to-run drift well under 1 ms)."""
    order = {"url": f"{ECHO_B}/echo", "count": 30, "fresh": False}
    lab.probe_raw("team-a/client-0", order)  # warm-up: connections and TLS
    healthy = statistics.median(r["latency_us"] for r in
                                lab.probe_raw("team-a/client-0", order)["results"])
    with injected(mesh, "slow-proxy"):
        slow = statistics.median(r["latency_us"] for r in
                                 lab.probe_raw("team-a/client-0", order)["results"])
    assert slow - healthy >= 0.8 * SLOW_PROXY_DELAY_MS * 1000, (healthy, slow)
