"""The netns lab on real traffic: names, VIPs, balancing, kills, blocks, captures."""

from __future__ import annotations

import pytest

from meshproof.errors import ConfigError, UnknownName
from meshproof.results import by_pod, statuses

pytestmark = pytest.mark.lab


def test_names_resolve_in_pods(lab):
    for url in ("http://details/healthz", "http://details.bookinfo/healthz",
                "http://details.bookinfo.svc.cluster.local/healthz"):
        assert statuses(lab.probe("bookinfo/client-0", {"url": url})) == [200], url
    ans = lab.probe("team-a/client-0", {"url": "http://echo.team-b/echo"})
    body = ans["results"][0]["body"]
    assert (body["namespace"], body["service"]) == ("team-b", "echo")
    # A short name resolves only in its own namespace, as in kube.
    assert lab.probe("team-a/client-0", {"url": "http://details/"})["results"][0]["error"] == "dns"


def test_productpage_is_built_from_details_reviews_and_ratings(lab):
    ans = lab.probe("bookinfo/client-0", {"url": "http://productpage/", "count": 60,
                                          "concurrency": 4})
    versions = set()
    for r in ans["results"]:
        assert r["status"] == 200, r
        page = r["body"]
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
    pods = lab.scale("team-b/echo", 3)
    try:
        assert len(pods) == 3
        ans = lab.probe("team-a/client-0", {"url": "http://echo.team-b/echo", "count": 300,
                                            "concurrency": 8})
        counts = by_pod(ans)
        assert sorted(counts) == ["echo-0", "echo-1", "echo-2"], counts
        # Binomial(300, 1/3): P(one replica < 60) < 3 * 1e-6, so a fair balancer
        # fails this with probability < 1e-5; a stuck one (all to one pod) fails always.
        assert min(counts.values()) >= 60, counts
    finally:
        lab.scale("team-b/echo", 1)


def test_killed_pod_stops_receiving_traffic(lab):
    lab.scale("team-c/echo", 2)
    try:
        lab.kill_pod("team-c/echo-1")
        ans = lab.probe("team-a/client-0", {"url": "http://echo.team-c/echo", "count": 100,
                                            "concurrency": 4})
        assert by_pod(ans) == {"echo-0": 100}
        lab.revive_pod("team-c/echo-1")
        ans = lab.probe("team-a/client-0", {"url": "http://echo.team-c/echo", "count": 100,
                                            "concurrency": 4})
        assert set(by_pod(ans)) == {"echo-0", "echo-1"}  # P(miss) = 2 * 2^-100
    finally:
        lab.scale("team-c/echo", 1)


def test_service_without_ready_pods_refuses(lab):
    lab.kill_pod("bookinfo/ratings-0")
    try:
        ans = lab.probe("bookinfo/client-0", {"url": "http://ratings/ratings/0",
                                              "timeout_s": 2})
        assert ans["results"][0]["error"] == "refused"
    finally:
        lab.revive_pod("bookinfo/ratings-0")
    assert statuses(lab.probe("bookinfo/client-0", {"url": "http://ratings/ratings/0"})) == [200]


def test_blocked_traffic_fails_and_heals(lab):
    order = {"url": "http://echo.team-b/echo", "count": 2, "timeout_s": 0.5}
    lab.block("team-a/client-0", "team-b/echo-0")
    try:
        ans = lab.probe("team-a/client-0", order)
        assert [r["error"] for r in ans["results"]] == ["timeout", "timeout"]
        # The block is between those two pods only.
        assert statuses(lab.probe("team-c/client-0", order)) == [200, 200]
    finally:
        lab.unblock("team-a/client-0", "team-b/echo-0")
    assert statuses(lab.probe("team-a/client-0", order)) == [200, 200]


def test_capture_sees_plaintext_marker(lab):
    marker = "MESHPROOF-MARKER-7f3a9c"
    cid = lab.capture_start("team-a/client-0", "team-b/echo-0")
    lab.probe("team-a/client-0", {"url": "http://echo.team-b/echo", "count": 5,
                                  "headers": {"x-marker": marker}})
    summary = lab.capture_stop(cid, marker=marker)
    assert summary["marker_hits"] >= 5, summary  # request headers, and the echo reflects them
    assert summary["tls_records"] == 0
    assert summary["packets"] > 10
    # A capture on another pair sees none of it (it is really between those two).
    cid = lab.capture_start("team-c/client-0", "team-b/echo-0")
    lab.probe("team-a/client-0", {"url": "http://echo.team-b/echo",
                                  "headers": {"x-marker": marker}})
    assert lab.capture_stop(cid, marker=marker)["packets"] == 0


def test_probe_reports_error_kinds_and_tls(lab):
    # Nothing listens on 9999 in the echo pod: refused, by pod IP.
    ip = next(p["ip"] for p in lab.pods() if p["key"] == "team-b/echo-0")
    ans = lab.probe("team-a/client-0", {"url": f"http://{ip}:9999/"})
    assert ans["results"][0]["error"] == "refused"
    ans = lab.probe("team-a/client-0", {"url": "http://echo.team-b/delay/3000",
                                        "timeout_s": 0.3})
    r = ans["results"][0]
    assert r["error"] == "timeout" and 250_000 <= r["latency_us"] < 2_000_000, r


def test_flaky_endpoint_counts_attempts(lab):
    lab.probe("team-a/client-0", {"url": "http://echo.team-b/counter/reset", "method": "POST"})
    ans = lab.probe("team-a/client-0", {"url": "http://echo.team-b/flaky/k1?fail=2",
                                        "count": 4})
    assert statuses(ans) == [503, 503, 200, 200]
    ans = lab.probe("team-a/client-0", {"url": "http://echo.team-b/counter/k1"})
    assert ans["results"][0]["body"]["attempts"] == 4
    assert statuses(lab.probe("team-a/client-0", {"url": "http://echo.team-b/status/418"})) \
        == [418]


def test_bad_input_is_named(lab):
    with pytest.raises(UnknownName, match="no workload 'team-b/nope'"):
        lab.scale("team-b/nope", 2)
    with pytest.raises(UnknownName, match="no pod"):
        lab.probe("team-x/client-0", {"url": "http://x/"})
    with pytest.raises(ConfigError, match="url must be"):
        lab.probe("team-a/client-0", {"url": "ftp://x/"})
    with pytest.raises(ConfigError, match="replicas"):
        lab.scale("team-b/echo", 500)
