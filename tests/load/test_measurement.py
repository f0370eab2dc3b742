"""The measurement is right: open loop, microsecond histograms, the gate names the percentile.

No lab: the generator runs as a local process against a trivial server on
loopback. Fast (CI tier).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof.load import gate, genclient, hist
from tests.load.helpers import StallingServer, flagged, synthetic

RATE = 500.0


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[genclient.Generator]:
    g = genclient.local(tmp_path_factory.mktemp("gen") / "gen.sock")
    yield g
    g.stop()


def over(h: object, us: float) -> int:
    return sum(it.count_at_value_iterated_to for it in h.get_recorded_iterator()  # type: ignore[attr-defined]
               if it.value_iterated_to > us)


def test_histogram_has_microsecond_resolution() -> None:
    h = hist.new()
    for us in (75, 76, 77, 1999, 2000):
        hist.record_us(h, us)
    back = hist.decode(h.encode().decode())  # the report's round trip
    assert [int(back.get_value_at_percentile(p)) for p in (20, 40, 60, 80, 100)] == \
        [75, 76, 77, 1999, 2000]
    assert hist.percentiles(back)["p50"] == 77.0


def test_stall_is_counted_with_its_full_wait(generator: genclient.Generator) -> None:
    """A 200 ms server stall at 500 rps: the ~100 requests scheduled into it are all
    counted, each with its wait from its intended send time. A closed-loop
    generator with 16 connections would record at most 16 slow requests."""
    srv = StallingServer(0.2)
    try:
        import time

        # the run starts ~50 ms after the order; warm-up 0.5 s; stall 1 s into the window
        srv.stall_at = time.monotonic() + 1.55
        ans = generator.run({"scenario": "floor", "host": f"http://127.0.0.1:{srv.port}",
                             "path": "/", "rate": RATE, "duration_s": 2.5, "warmup_s": 0.5,
                             "connections": 16})
    finally:
        srv.close()
    assert srv.stalled_at is not None, "the server never stalled"
    h = hist.decode(ans["latency_hdr"])
    assert ans["errors"] == {} and ans["unfinished"] == 0
    assert ans["ok"] == int(RATE * 2.5)  # every scheduled request counted
    # Requests scheduled during the stall wait (0.2 s - their offset into it):
    # about RATE * 0.1 s of them wait more than 100 ms, the first about 200 ms.
    assert over(h, 100_000) >= 0.7 * RATE * 0.1, over(h, 100_000)
    assert over(h, 50_000) >= 0.7 * RATE * 0.15, over(h, 50_000)
    assert h.get_max_value() >= 190_000


def test_open_loop_rate_is_kept(generator: genclient.Generator) -> None:
    """Every scheduled request is sent (its send lateness recorded) and answered, and the
    achieved rate falls short of the schedule only by what the generator itself measured.

    ``achieved_rps`` divides by a window that ends with the last answer: a machine that
    stalls the generator or the server for 10 ms (two CPU burners on 2 cores do) makes a
    1 s run 1% "slow" though every send kept its schedule. So the window may exceed the
    duration by at most the worst send lateness plus the worst latency, both from the
    run's own histograms; a generator that dropped or throttled sends fails the counts
    (and the stall test shows it does not wait for answers)."""
    srv = StallingServer()
    try:
        ans = generator.run({"scenario": "floor", "host": f"http://127.0.0.1:{srv.port}",
                             "path": "/", "rate": RATE, "duration_s": 1.0, "warmup_s": 0.2,
                             "connections": 4})
    finally:
        srv.close()
    assert ans["ok"] == RATE
    lateness, latency = hist.decode(ans["lateness_hdr"]), hist.decode(ans["latency_hdr"])
    assert lateness.total_count == RATE
    slip_s = (lateness.get_max_value() + latency.get_max_value()) / 1e6
    assert ans["window_s"] <= 1.0 + slip_s + 0.001, (ans["window_s"], slip_s)
    assert ans["achieved_rps"] >= RATE / (1.0 + slip_s + 0.001)


def test_gate_passes_within_noise() -> None:
    base = synthetic({"p50": 350, "p90": 410, "p99": 680})
    cur = synthetic({"p50": 360, "p90": 400, "p99": 700})
    code, lines = gate.judge(base, cur)
    assert code == 0, lines


@pytest.mark.parametrize("pct", ["p50", "p90", "p99"])
def test_gate_fails_naming_the_percentile(pct: str) -> None:
    added = {"p50": 350.0, "p90": 410.0, "p99": 680.0}
    base = synthetic(added)
    cur = synthetic({**added, pct: added[pct] + 500})
    code, lines = gate.judge(base, cur)
    assert code == 1
    assert f"regressed at single-hop {pct}" in lines[-1]
    assert [v.percentile for v in gate.compare(base, cur) if v.regressed] == [pct]


def test_gate_ignores_the_tail() -> None:
    base = synthetic({"p50": 350, "p90": 410, "p99": 680})
    cur = synthetic({"p50": 350, "p90": 410, "p99": 680, "p99.9": 9000, "max": 50000})
    assert gate.judge(base, cur)[0] == 0


def test_gate_threshold_follows_the_spread() -> None:
    added = {"p50": 350.0, "p90": 410.0, "p99": 680.0}
    noisy = synthetic({**added, "p99": 880}, sd_us=200.0)
    assert gate.judge(synthetic(added, sd_us=200.0), noisy)[0] == 0  # +200 us within noise
    assert gate.judge(synthetic(added), synthetic({**added, "p99": 880}))[0] == 1


def test_gate_refuses_a_flagged_run() -> None:
    base = synthetic({"p50": 350})
    code, lines = gate.judge(base, flagged(base))
    assert code == 1 and "flagged" in lines[-1]


NOISY = {"p50": 300.0, "p90": 700.0, "p99": 1500.0, "max": 9000.0}


def test_a_noisy_run_is_a_figure_with_its_uncertainty() -> None:
    """Late sends (a busy machine) no longer make a run invalid: the figure comes with an
    uncertainty that includes the most the lateness can have shifted it."""
    quiet = synthetic({"p50": 350})["scenarios"]["single-hop"]
    noisy = synthetic({"p50": 350}, late_us=NOISY)["scenarios"]["single-hop"]
    assert noisy["valid"] and not noisy["flags"] and "send lateness p99" in noisy["notes"][0]
    u = noisy["added_us"]["p50"]["uncertainty"]
    assert u["lateness_bias_us"] == 300.0 and u["us"] >= 300.0
    assert noisy["added_us"]["p99"]["uncertainty"]["lateness_bias_us"] == 1500.0
    assert quiet["added_us"]["p50"]["uncertainty"]["us"] < 50


def test_gate_compares_a_noisy_run_within_its_uncertainty() -> None:
    """Against a quiet baseline, a noisy run whose p50 rose by less than its lateness bound
    passes; a slow-proxy-sized rise (3 ms fault: +3.8 ms here) fails it still."""
    added = {"p50": 350.0, "p90": 410.0, "p99": 680.0}
    base = synthetic(added)
    assert gate.judge(base, synthetic({**added, "p50": 550.0}, late_us=NOISY))[0] == 0
    assert gate.judge(base, synthetic({**added, "p50": 550.0}))[0] == 1  # quiet: caught
    slow = synthetic({k: v + 3800 for k, v in added.items()}, late_us=NOISY)
    code, lines = gate.judge(base, slow)
    assert code == 1 and "regressed at single-hop p50, single-hop p90, single-hop p99" \
        in lines[-1], lines


def test_report_table_and_schema(tmp_path: Path) -> None:
    from meshproof.load import plots, report

    doc = synthetic({"p50": 350, "p90": 410, "p99": 680})
    doc = report.document(doc["scenarios"], {}, "test", {}, {})
    path = report.write(doc, tmp_path, "t")
    assert report.load(path)["scenarios"]["single-hop"]["added_us"]["p50"]["median"] == 350.0
    text = report.table(doc)
    assert "added (median)" in text and "0.350" in text
    pngs = plots.write_all(doc, tmp_path, "t")
    assert all(p.stat().st_size > 1000 for p in pngs)
