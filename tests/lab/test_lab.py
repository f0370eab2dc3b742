"""The netns lab on real traffic, through the typed target interface: names, VIPs,
balancing, kills, blocks, captures, error kinds and bad input."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections import Counter

import pytest

from meshproof import paths
from meshproof.errors import ConfigError, UnknownName
from meshproof.probe import send
from meshproof.targets.model import ProbeOrder

pytestmark = pytest.mark.lab


def statuses(results) -> list[int]:
    return [r.status for r in results]


def by_pod(results) -> dict[str, int]:
    return dict(Counter(r.pod or f"error:{r.error}" for r in results))


def test_pods_are_found_by_namespace_workload_and_ordinal(lab):
    p = lab.pod("team-b", "echo")
    assert (p.namespace, p.workload, p.ordinal, p.key) == ("team-b", "echo", 0, "team-b/echo-0")
    with pytest.raises(UnknownName, match="no pod 3 of workload team-b/echo"):
        lab.pod("team-b", "echo", 3)
    assert {s.key for s in lab.services()} >= {"bookinfo/reviews", "team-c/echo"}
    assert lab.supports("capture") and 0 < lab.clock_tick_s() < 0.1


def test_names_resolve_in_pods(lab):
    bc, ac = lab.pod("bookinfo", "client"), lab.pod("team-a", "client")
    for url in ("http://details/healthz", "http://details.bookinfo/healthz",
                "http://details.bookinfo.svc.cluster.local/healthz"):
        assert statuses(send(lab, bc, url)) == [200], url
    body = send(lab, ac, "http://echo.team-b/echo")[0].json
    assert (body["namespace"], body["service"]) == ("team-b", "echo")
    # A short name resolves only in its own namespace, as in kube.
    assert send(lab, ac, "http://details/")[0].error == "dns"


def test_productpage_is_built_from_details_reviews_and_ratings(lab):
    versions = set()
    for r in send(lab, lab.pod("bookinfo", "client"), "http://productpage/", 60, concurrency=4):
        assert r.status == 200, r
        page = r.json
        assert page["ok"] and page["details"]["author"] == "William Shakespeare"
        rv = page["reviews"]
        versions.add(rv["version"])
        if rv["version"] == "v1":
            assert "ratings" not in rv
        else:
            assert rv["ratings"]["ratings"]["Reviewer1"] == 5
            assert rv["color"] == ("black" if rv["version"] == "v2" else "red")
    # P(a version unseen in 60 uniform draws) = 3 * (2/3)^60 < 1e-10.
    assert versions == {"v1", "v2", "v3"}


def test_service_balances_across_replicas(lab):
    pods = lab.scale("team-b", "echo", 3)
    try:
        assert [p.ordinal for p in pods] == [0, 1, 2]
        counts = by_pod(send(lab, lab.pod("team-a", "client"), "http://echo.team-b/echo", 300,
                             concurrency=8))
        assert sorted(counts) == ["echo-0", "echo-1", "echo-2"], counts
        # Binomial(300, 1/3): P(one replica < 60) < 3 * 1e-6, so a fair balancer
        # fails this with probability < 1e-5; a stuck one (all to one pod) fails always.
        assert min(counts.values()) >= 60, counts
    finally:
        lab.scale("team-b", "echo", 1)


def test_killed_pod_stops_receiving_traffic(lab):
    lab.scale("team-c", "echo", 2)
    src = lab.pod("team-a", "client")
    try:
        lab.kill_pod(lab.pod("team-c", "echo", 1))
        assert by_pod(send(lab, src, "http://echo.team-c/echo", 100, concurrency=4)) \
            == {"echo-0": 100}
        lab.revive_pod(lab.pod("team-c", "echo", 1))
        seen = by_pod(send(lab, src, "http://echo.team-c/echo", 100, concurrency=4))
        assert set(seen) == {"echo-0", "echo-1"}  # P(miss) = 2 * 2^-100
    finally:
        lab.scale("team-c", "echo", 1)


def test_service_without_ready_pods_refuses(lab):
    src, ratings = lab.pod("bookinfo", "client"), lab.pod("bookinfo", "ratings")
    lab.kill_pod(ratings)
    try:
        assert send(lab, src, "http://ratings/ratings/0", timeout_s=2)[0].error == "refused"
    finally:
        lab.revive_pod(ratings)
    assert statuses(send(lab, src, "http://ratings/ratings/0")) == [200]


def test_blocked_traffic_fails_and_heals(lab):
    a, b, c = lab.pod("team-a", "client"), lab.pod("team-b", "echo"), lab.pod("team-c", "client")
    url = "http://echo.team-b/echo"
    lab.block(a, b)
    try:
        assert [r.error for r in send(lab, a, url, 2, timeout_s=0.5)] == ["timeout", "timeout"]
        # The block is between those two pods only.
        assert statuses(send(lab, c, url, 2, timeout_s=0.5)) == [200, 200]
    finally:
        lab.unblock(a, b)
    assert statuses(send(lab, a, url, 2, timeout_s=0.5)) == [200, 200]


def test_capture_sees_plaintext_marker(lab):
    marker = "MESHPROOF-MARKER-7f3a9c"
    a, b, c = lab.pod("team-a", "client"), lab.pod("team-b", "echo"), lab.pod("team-c", "client")
    cid = lab.capture_start(a, b)
    send(lab, a, "http://echo.team-b/echo", 5, headers={"x-marker": marker})
    summary = lab.capture_stop(cid, marker=marker)
    assert summary.marker_hits >= 5, summary  # request headers, and the echo reflects them
    assert summary.tls_records == 0
    assert summary.packets > 10
    # A capture on another pair sees none of it (it is really between those two).
    cid = lab.capture_start(c, b)
    send(lab, a, "http://echo.team-b/echo", headers={"x-marker": marker})
    assert lab.capture_stop(cid, marker=marker).packets == 0


def test_capture_holds_every_frame_when_tcpdump_lags(lab):
    """A capture stopped while tcpdump is starved still holds every frame sent before
    the stop: tcpdump is frozen (SIGSTOP) through the traffic and for 0.6 s into the
    stop, longer than any "file stopped growing" wait, and must still report all 30
    requests: about 300 frames wait in its ring buffer meanwhile (libpcap's default
    held 32)."""
    marker = "MESHPROOF-MARKER-lag-5b1d"
    a, b = lab.pod("team-a", "client"), lab.pod("team-b", "echo")
    cid = lab.capture_start(a, b)
    found = subprocess.run(["pgrep", "-f", f"tcpdump .*{paths.RUN_DIR}/captures/{cid}.pcap"],
                           capture_output=True, text=True, timeout=10).stdout.split()
    assert len(found) == 1, found
    pid = int(found[0])
    os.kill(pid, signal.SIGSTOP)
    wake = threading.Timer(0.6, os.kill, (pid, signal.SIGCONT))
    try:
        sent = send(lab, a, "http://echo.team-b/echo", 30, headers={"x-marker": marker})
        wake.start()
        summary = lab.capture_stop(cid, marker=marker)
    finally:
        wake.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    assert statuses(sent) == [200] * 30
    assert summary.marker_hits >= 30 and summary.packets >= 60, summary


def test_probe_reports_error_kinds(lab):
    a, b = lab.pod("team-a", "client"), lab.pod("team-b", "echo")
    # Nothing listens on 9999 in the echo pod: refused, by pod IP.
    assert send(lab, a, f"http://{b.ip}:9999/")[0].error == "refused"
    r = send(lab, a, "http://echo.team-b/delay/3000", timeout_s=0.3)[0]
    assert r.error == "timeout" and 250_000 <= r.latency_us < 2_000_000, r


def test_flaky_endpoint_counts_attempts(lab):
    a = lab.pod("team-a", "client")
    send(lab, a, "http://echo.team-b/counter/reset", method="POST")
    assert statuses(send(lab, a, "http://echo.team-b/flaky/k1?fail=2", 4, concurrency=1)) \
        == [503, 503, 200, 200]
    assert send(lab, a, "http://echo.team-b/counter/k1")[0].json["attempts"] == 4
    assert statuses(send(lab, a, "http://echo.team-b/status/418")) == [418]


def test_bad_input_is_named(lab):
    a = lab.pod("team-a", "client")
    with pytest.raises(UnknownName, match="no workload 'team-b/nope'"):
        lab.scale("team-b", "nope", 2)
    with pytest.raises(UnknownName, match="no pod"):
        lab.probe_raw("team-x/client-0", {"url": "http://x/"})
    with pytest.raises(ConfigError, match="url must be"):
        lab.probe(a, ProbeOrder("ftp://x/"))
    with pytest.raises(ConfigError, match="replicas"):
        lab.scale("team-b", "echo", 500)
