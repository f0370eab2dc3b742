"""The stdlib generator (loadtests/podgen.py) and merging several generators' answers.

No lab, no cluster: podgen runs here as the kube target runs it in a pod (one
process per order, the order on stdin), under ``python3 -S -I`` so an import
of anything outside the standard library fails the test.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from meshproof import paths
from meshproof.load import group, hist
from tests.load.helpers import ok_server

PODGEN = paths.ROOT / "loadtests" / "podgen.py"
sys.path.insert(0, str(PODGEN.parent))
import podgen  # noqa: E402


def test_counts_rebuild_exactly_the_hdr_histogram_of_the_raw_values():
    """Rounding each value down to its HDR bucket in the pod loses nothing: the harness's
    histogram from the counts equals recording the raw values (every percentile, max,
    count, and the encoded form), across the exact range and the 2^k-wide buckets."""
    rng = random.Random(7)
    raw_us = [rng.choice([rng.randint(1, 2047), rng.randint(2048, 70_000),
                          int(rng.lognormvariate(6, 1.5)) + 1]) for _ in range(20_000)]
    raw_us += [1, 2047, 2048, 2049, 4095, 4096, 60_000_000, 90_000_000]
    direct = hist.new()
    counts: dict[str, int] = {}
    for us in raw_us:
        hist.record_us(direct, us)
        b = str(podgen.bucket_us(us * 1000 + 999))  # ns in, sub-us part dropped
        counts[b] = counts.get(b, 0) + 1
    rebuilt = hist.from_counts(json.loads(json.dumps(counts)))
    assert hist.percentiles(rebuilt) == hist.percentiles(direct)
    for q in (0.1, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99):
        assert rebuilt.get_value_at_percentile(q) == direct.get_value_at_percentile(q)
    assert len(counts) < len(set(raw_us))  # bounded: buckets, not values


def test_merged_answers_are_the_histogram_of_all_requests():
    rng = random.Random(3)
    parts = [[rng.randint(50, 9000) for _ in range(n)] for n in (3000, 1700, 2500)]

    def answer(values: list[int], ok: int) -> dict:
        h = hist.new()
        for v in values:
            hist.record_us(h, v)
        e = hist.encode(h)
        return {"ok": ok, "sent": ok + 10, "measured": ok, "warmup_requests": 10,
                "unfinished": 0, "errors": {"ConnectionError: x": 1}, "achieved_rps": 100.0,
                "generator_cpu_s": 0.5, "window_s": 10.0 + ok / 1e4, "connections": 4,
                "latency_hdr": e, "lateness_hdr": e, "dispatch_hdr": e}

    merged = group.merge_answers([answer(p, len(p)) for p in parts], {"rate": 300.0})
    everything = hist.new()
    for v in (v for p in parts for v in p):
        hist.record_us(everything, v)
    assert hist.percentiles(hist.decode(merged["latency_hdr"])) == hist.percentiles(everything)
    assert merged["ok"] == 7200 and merged["errors"] == {"ConnectionError: x": 3}
    assert merged["achieved_rps"] == 300.0 and merged["rate"] == 300.0
    assert merged["connections"] == 12 and merged["generators"] == 3
    assert merged["window_s"] == pytest.approx(10.3)


@pytest.fixture(scope="module")
def server():
    with ok_server() as url:
        yield url


def once(order: dict | str) -> tuple[int, dict]:
    """podgen as a pod runs it: stdlib only (-S: no site-packages; -I: isolated)."""
    line = order if isinstance(order, str) else json.dumps(order)
    p = subprocess.run([sys.executable, "-S", "-I", str(PODGEN), "--once"], input=line + "\n",
                       capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout)


def test_podgen_runs_stdlib_only_open_loop_and_answers_like_the_local_generator(server):
    rc, answer = once({"scenario": "single-hop", "rate": 400, "duration_s": 0.6,
                       "warmup_s": 0.2, "connections": 4, "host": server, "path": "/r"})
    assert rc == 0, answer
    a = hist.with_hdr(answer["ok"])
    assert a["sent"] == 320 and a["warmup_requests"] == 80 and a["ok"] == 240
    assert a["unfinished"] == 0 and not a["errors"]
    lat = hist.percentiles(hist.decode(a["latency_hdr"]))
    assert lat["count"] == 240 and 0 < lat["p50"] < 1_000_000
    assert hist.decode(a["lateness_hdr"]).total_count == 240
    # the same fields as loadtests/generator.py's answer (runner.summarize_phase reads them)
    assert {"achieved_rps", "window_s", "generator_cpu_s", "measured", "errors",
            "dispatch_hdr"} <= set(a)


def test_podgen_counts_errors_and_refuses_bad_orders(server):
    rc, answer = once({"rate": 100, "duration_s": 0.5, "warmup_s": 0, "connections": 1,
                       "host": server, "path": "/fail"})
    assert rc == 0 and answer["ok"]["errors"] == {"HTTPStatusError: HTTP 503": 50}
    rc, answer = once({"rate": 100, "duration_s": 0.5, "connections": 1,
                       "host": "http://127.0.0.1:1", "path": "/"})
    assert rc == 0 and sum(answer["ok"]["errors"].values()) == 50  # refused, counted
    for bad in ({"rate": 1e9, "duration_s": 1, "host": server, "path": "/"},
                {"rate": 10, "duration_s": 1},  # no host/path: no scenario table here
                {"rate": 10, "duration_s": 1, "host": server, "path": "/",
                 "start_at_unix": 4e9}):
        rc, answer = once(bad)
        assert rc == 1 and "ValueError" in answer["error"]
    rc, answer = once("not json")
    assert rc == 1 and "error" in answer


def test_podgen_is_what_the_configmap_mounts():
    from meshproof.targets.kube import manifests

    assert manifests.fixture_files()["loadgen.py"] == Path(PODGEN).read_text()


def test_gate_refuses_a_baseline_from_another_target(tmp_path, monkeypatch, capsys):
    """A kube run gated against a local baseline (or the reverse) is a usage error (2):
    the added latency of two different places does not compare."""
    from meshproof.load import __main__ as cli
    from meshproof.load import report
    from tests.load.helpers import synthetic

    base = {**synthetic({"p50": 300}), "target": "local"}
    path = report.write(base, tmp_path, "base")
    ran = {**synthetic({"p50": 300}), "target": "kube"}

    class Session:
        def __init__(self, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            pass

        def measure(self, settings, command):
            return ran

    monkeypatch.setattr(cli, "LoadSession", Session)
    monkeypatch.setattr(cli.plots, "write_all", lambda doc, out, stem: [])
    monkeypatch.setattr(cli.report, "table", lambda doc: "")
    assert cli.main(["--target", "kube", "--mesh", "istio", "--baseline", str(path),
                     "--out", str(tmp_path)]) == 2
    assert "measured on target 'local', this run on 'kube'" in capsys.readouterr().err
