"""The load tests on the real lab: a short run writes the report and plots; the fault test.

One load lab for the module (twin namespaces, reference mesh). If someone
else's lab is running, the session waits for it (bounded) rather than
tearing it down.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof.load import plots, report
from meshproof.load.session import LoadSession
from meshproof.load.settings import LoadSettings, ScenarioSettings

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


@pytest.mark.slow
def test_fault_delay_of_2ms_raises_p50_overhead_by_2ms(session: LoadSession) -> None:
    """An Envoy fault delay of 2 ms on the meshed path (every request) must show up
    as +2 ms +- 0.3 ms in the reported p50 overhead: the measurement sees what
    the mesh adds, no more and no less."""
    from meshproof.intent import Fault
    from meshproof.mesh.reference import ReferenceMesh

    assert session.target is not None
    mesh = ReferenceMesh(session.target.pods())
    settings = LoadSettings(scenarios=(ScenarioSettings("single-hop", 500.0, 4.0, 3),),
                            warmup_s=1.0, floor_s=0.0)

    def added_p50() -> float:
        doc = session.measure(settings, "fault test")
        sc = doc["scenarios"]["single-hop"]
        assert sc["valid"], sc["flags"]
        return float(sc["added_us"]["p50"]["median"])

    mesh.wait_programmed(mesh.reset())
    before = added_p50()
    mesh.wait_programmed(mesh.apply(Fault("load-mesh/reviews", delay_ms=2, delay_percent=100)))
    try:
        after = added_p50()
    finally:
        mesh.wait_programmed(mesh.reset())
    assert abs((after - before) - 2000) <= 300, (
        f"p50 overhead {before:.0f} us -> {after:.0f} us with a 2 ms fault delay "
        f"(a change near 0 means the mesh did not program the Fault)")
