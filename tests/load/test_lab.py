"""The load tests on the real lab: a short run writes the report and plots; the fault test.

One load lab for the module (twin namespaces, reference mesh). If someone
else's lab is running, the session waits for it (bounded) rather than
tearing it down.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshproof.load import plots, report, wire
from meshproof.load.session import LoadSession
from meshproof.load.settings import LoadSettings, ScenarioSettings
from meshproof.load.topology import CLIENT_POD, MESH_NS, PLAIN_NS
from meshproof.targets.local import netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the netns lab needs root")


def attach(paths: list[Path]) -> None:
    """Allure attachments when allure-pytest is active (a no-op otherwise)."""
    try:
        import allure
    except ImportError:
        return
    for p in paths:
        kind = allure.attachment_type.PNG if p.suffix == ".png" else allure.attachment_type.JSON
        allure.attach.file(str(p), name=p.name, attachment_type=kind)


@pytest.fixture(scope="module")
def session() -> Iterator[LoadSession]:
    with LoadSession(wait_s=300) as s:
        yield s


def test_short_run_writes_report_and_plots(session: LoadSession, tmp_path: Path) -> None:
    settings = LoadSettings(scenarios=(ScenarioSettings("single-hop", 300.0, 2.0, 2),),
                            warmup_s=0.5, floor_s=1.0)
    doc = session.measure(settings, "tests/load short run")
    path = report.write(doc, tmp_path, "short")
    pngs = plots.write_all(doc, tmp_path, "short")
    attach([path, *pngs])
    again = report.load(path)
    sc = again["scenarios"]["single-hop"]
    assert len(sc["rounds"]) == 2 and sc["rounds"][1]["order"] == ["mesh", "plain"]
    for key in ("plain", "mesh", "floor"):
        assert sc["percentiles_us"][key]["count"] >= 300 * 2 * (1 if key == "floor" else 2) * 0.99
    # the meshed path really crossed two mTLS sidecars; the baseline none
    assert again["mesh"]["tls_handshakes"]["load-mesh/client-0"] > 0
    assert again["mesh"]["tls_handshakes"]["load-mesh/reviews-v1-0"] > 0
    assert sc["added_us"]["p50"]["median"] > 0
    assert set(sc["proxy"]["sidecars"]) == {"load-mesh/client-0", "load-mesh/reviews-v1-0"}
    assert sc["proxy"]["sidecars"]["load-mesh/client-0"]["cpu_s"] > 0
    assert sc["lateness_us"]["p50"] < 200
    assert "added (median)" in report.table(again)
    assert all(p.exists() and p.stat().st_size > 1000 for p in pngs)


#: The same requests timed by the generator and on the wire (tcpdump in the client
#: pod) must agree on the added p50 to this, with and without a fault delay.
AGREE_US = 300.0
#: Not 500 rps: a 2 ms period puts every request on one of two fixed phases of
#: the 4 ms kernel tick that Envoy's timers follow, so what the fault adds
#: changes from run to run (docs/load.md); at 487 rps the phases drift over
#: the tick, as real arrivals would. With the fault the generator reads
#: 45-250 us more than the wire at p50 (answers released together at a tick
#: queue in its one thread; 0-80 us without the fault): 5 rounds, so one odd
#: round does not make the median.
FAULT_RATE = 487.0
FAULT_ROUNDS = 5
PLAIN_PORTS = frozenset({80})          # the service VIP (DNAT in the fabric)
MESH_PORTS = frozenset({80, 15001})    # redirected to the client sidecar on lo


def _wire_added_p50(doc: dict[str, Any], caps: dict[str, Path]) -> tuple[float, dict[str, Any]]:
    """The run's added p50 (median over rounds of mesh - plain) timed on the wire."""
    sc = doc["scenarios"]["single-hop"]
    s = doc["settings"]
    rate, warmup = sc["rate_rps"], int(sc["rate_rps"] * s["warmup_s"])
    per_path, sizes = {}, {}
    for path, ports in (("plain", PLAIN_PORTS), ("mesh", MESH_PORTS)):
        per_path[path], sizes[path] = wire.round_p50s(caps[path], ports, warmup)
    added = [m - p for m, p in zip(per_path["mesh"], per_path["plain"])]
    rounds = len(sc["rounds"])
    expected = int(rate * (sc["duration_s"] + s["warmup_s"]))
    for path in ("plain", "mesh"):  # every request of every round, and nothing else
        assert sizes[path][1:] == [expected] * rounds, (path, sizes[path])
    return statistics.median(added), {"wire_p50_us": per_path, "wire_added_us": added,
                                      "sizes": sizes}


@pytest.mark.slow
def test_envoy_fault_delay_in_p50_overhead_matches_the_wire(session: LoadSession,
                                                            tmp_path: Path) -> None:
    """An Envoy fault delay of 2 ms on every meshed request must show up in the
    reported p50 overhead as exactly what it added to those requests.

    What it adds is not 2 ms here: Envoy's timers run on libevent's
    CLOCK_MONOTONIC_COARSE (4 ms ticks on this VM), so a 2 ms delay fires at
    2-4 ms, phase-locked to a constant-rate schedule (docs/load.md: +2.2 to
    +4.1 ms at p50 measured in this lab). So the truth comes from an independent instrument on the
    same requests in the same runs: tcpdump in each client pod timestamps each
    request and its answer in the kernel. The report's added p50 (generator
    clocks, HDR histograms, per-round medians) must agree with the wire's to
    0.3 ms without the fault and with it, and so must the rise; Envoy's own
    stats must show the delay on every meshed request.
    """
    from meshproof.intent import Fault
    from meshproof.mesh.reference import ReferenceMesh
    from meshproof.mesh.refpaths import admin_socket
    from refmesh.admin import EnvoyAdmin

    assert session.target is not None
    mesh = ReferenceMesh(session.target)
    client = EnvoyAdmin(admin_socket(MESH_NS, CLIENT_POD), timeout=5)
    delays = r"outbound_reviews\.load-mesh\..*fault\.delays_injected$"
    settings = LoadSettings(
        scenarios=(ScenarioSettings("single-hop", FAULT_RATE, 4.0, FAULT_ROUNDS),),
        warmup_s=1.0, floor_s=0.0)

    def measured(label: str) -> dict[str, Any]:
        before = sum(client.stats(delays).values())
        caps = {path: tmp_path / f"{label}-{path}.pcap" for path in ("plain", "mesh")}
        running = [wire.Capture(netns.pod_netns(ns, CLIENT_POD), "any",
                                " or ".join(f"tcp port {p}" for p in sorted(ports)), caps[path])
                   for path, ns, ports in (("plain", PLAIN_NS, PLAIN_PORTS),
                                           ("mesh", MESH_NS, MESH_PORTS))]
        try:
            doc = session.measure(settings, f"fault test: {label}")
        finally:
            stopped = [c.stop() for c in running]
        assert all(s["dropped"] == 0 for s in stopped), stopped
        sc = doc["scenarios"]["single-hop"]
        # Late sends (a lateness flag) are timed from their intended send time
        # and stay comparable; a short rate or errors would not be.
        assert not [f for f in sc["flags"] if "send lateness" not in f], sc["flags"]
        wire_added, detail = _wire_added_p50(doc, caps)
        meshed = sum(detail["sizes"]["mesh"])
        return {"report": float(sc["added_us"]["p50"]["median"]), "wire": wire_added,
                "report_rounds": sc["added_us"]["p50"]["per_round"], "flags": sc["flags"],
                **detail,
                "delays": sum(client.stats(delays).values()) - before, "meshed": meshed}

    mesh.wait_programmed(mesh.reset())
    plain = measured("no-fault")
    mesh.wait_programmed(mesh.apply(Fault("load-mesh/reviews", delay_ms=2, delay_percent=100)))
    try:
        fault = measured("fault-2ms")
    finally:
        mesh.wait_programmed(mesh.reset())
    summary = {"no_fault": plain, "fault_2ms": fault}
    try:
        import allure

        allure.attach(json.dumps(summary, indent=1), name="report vs wire",
                      attachment_type=allure.attachment_type.JSON)
    except ImportError:
        pass
    print(json.dumps(summary))

    # Envoy delayed every meshed request of the fault runs, and none before.
    assert plain["delays"] == 0 and fault["delays"] == fault["meshed"], summary
    rise_report = fault["report"] - plain["report"]
    rise_wire = fault["wire"] - plain["wire"]
    # The fault is really in the path: the wire sees at least most of the 2 ms.
    assert rise_wire > 1500, summary
    for label, r in (("no fault", plain), ("2 ms fault", fault)):
        assert abs(r["report"] - r["wire"]) <= AGREE_US, (
            f"{label}: report says the mesh adds {r['report']:.0f} us at p50, the wire "
            f"{r['wire']:.0f} us", summary)
    assert abs(rise_report - rise_wire) <= AGREE_US, (
        f"the 2 ms fault raised the reported p50 overhead by {rise_report:.0f} us; "
        f"Envoy added {rise_wire:.0f} us to the same requests on the wire", summary)
