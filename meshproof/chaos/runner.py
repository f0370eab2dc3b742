"""Running Chaos Toolkit experiments with chaostoolkit-lib, and judging them per phase.

The hypothesis is checked before the method, continuously during it (every
``FREQUENCY_S``, each check one bounded probe batch) and after it; the
rollbacks always run (settings ``runtime.rollbacks.strategy: always``). An
experiment passes when the hypothesis held in every phase (at least one
check during the method), every method activity succeeded, every rollback
succeeded, and the fault ledger is empty afterwards. The journal
(``reports/chaos/NAME.json``) is Chaos Toolkit's plus a ``meshproof`` key.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshproof.chaos import faults, ledger

FREQUENCY_S = 0.5
EXPERIMENTS = Path(__file__).resolve().parents[2] / "chaos" / "experiments"


@dataclass
class Result:
    name: str
    title: str
    catches: list[str]
    phases: dict[str, str]  # phase -> PASS | FAIL | - ; before during after method rollbacks
    duration_s: float
    journal: str = ""
    plot: str = ""
    status: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(v == "PASS" for v in self.phases.values())


def experiment_files(tests: str = "") -> list[Path]:
    """The experiment files, optionally filtered by a substring of their name (TESTS)."""
    files = sorted(EXPERIMENTS.glob("*.yaml"))
    if tests:
        terms = [t.strip() for t in tests.replace(" or ", ",").split(",") if t.strip()]
        files = [f for f in files if any(t in f.stem for t in terms)]
    return files


def meta(path: Path) -> dict[str, Any]:
    """The experiment's meshproof extension block (catches, tolerances' derivation)."""
    doc = yaml.safe_load(path.read_text())
    for ext in doc.get("extensions") or []:
        if ext.get("name") == "meshproof":
            return dict(ext)
    return {}


def takes_down_components(path: Path) -> bool:
    return bool(meta(path).get("takes-down-mesh-components"))


def run(path: Path, reports: Path, say: Any = None, fail_fast: bool = False) -> Result:
    """Run one experiment file against the attached lab; write its journal and plot.

    ``fail_fast``: stop the method at the first deviation seen during it (Chaos
    Toolkit's ``--fail-fast``; the rollbacks still run). For negative controls, whose
    verdict is settled by then; a user's run keeps every phase for the evidence."""
    from chaoslib.loader import load_experiment
    from chaoslib.run import EventHandlerRegistry, Runner, RunEventHandler
    from chaoslib.types import Schedule, Strategy

    say = say or (lambda _m: None)
    name = path.stem
    out = reports / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    events = out / f"{name}.events.jsonl"
    events.unlink(missing_ok=True)
    os.environ[faults.EVENTS_ENV] = str(events)
    leftover = ledger.undo_all()  # a killed run's faults, before anything else
    marks: list[tuple[float, str]] = []

    class Marks(RunEventHandler):  # type: ignore[misc]
        def start_hypothesis_before(self, experiment: Any) -> None:
            marks.append((time.time(), "before")); say(f"{name}: hypothesis before")

        def start_method(self, experiment: Any) -> None:
            marks.append((time.time(), "method")); say(f"{name}: method (fault)")

        def continuous_hypothesis_iteration(self, iteration: int, state: Any) -> None:
            ok = "ok" if state and state.get("steady_state_met") else "DEVIATED"
            say(f"{name}: during #{iteration} {ok}")

        def start_hypothesis_after(self, experiment: Any) -> None:
            marks.append((time.time(), "after")); say(f"{name}: hypothesis after")

        def start_rollbacks(self, experiment: Any) -> None:
            marks.append((time.time(), "rollbacks")); say(f"{name}: rollbacks")

    settings = {"runtime": {"rollbacks": {"strategy": "always"},
                            "hypothesis": {"strategy": "continuously"}}}
    experiment = load_experiment(str(path), settings)
    t0 = time.monotonic()
    started = time.time()
    runner = Runner(Strategy.CONTINUOUS, Schedule(continuous_hypothesis_frequency=FREQUENCY_S,
                                                  fail_fast=fail_fast))
    runner.register_event_handler(Marks())
    journal: dict[str, Any] = {}
    interrupted = False
    try:
        journal = runner.run(experiment, settings=settings)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        left = ledger.undo_all()  # backstop: nothing stays in place, whatever happened
        duration = time.monotonic() - t0
        if journal or interrupted:
            pass
    result = judge(name, experiment, journal, duration, left)
    result.notes += [f"undone from a previous run: {x}" for x in leftover]
    series = _read_events(events)
    journal["meshproof"] = {
        "catches": meta(path).get("catches", []),
        "tolerances": meta(path).get("tolerances", {}),
        "phases": result.phases,
        "marks": [{"t": t, "phase": p} for t, p in marks],
        "injected": [e for e in series if e["kind"] in ("inject", "remove")],
        "notes": [e for e in series if e["kind"] == "note"],
        "hypothesis": _phase_samples(journal, [e for e in series if e["kind"] == "sample"]),
        "rollbacks": [{"name": r["activity"]["name"], "status": r["status"]}
                      for r in journal.get("rollbacks", [])],
        "left_in_place_after_rollbacks": left,
        "series": [e for e in series if e["kind"] == "sample"],
        "defect": os.environ.get("MESHPROOF_DEFECT", ""),
    }
    jpath = out / f"{name}.json"
    jpath.write_text(json.dumps(journal, indent=2, default=str))
    result.journal = str(jpath)
    try:
        from meshproof.chaos.plot import plot

        result.plot = str(plot(journal["meshproof"], out / f"{name}.png", result.title))
    except Exception as exc:  # a plot must not change a verdict
        result.notes.append(f"plot failed: {exc}")
    events.unlink(missing_ok=True)
    _allure(result, journal)
    try:
        from meshproof.chaos import allure_out

        allure_out.write(reports / "allure-results", name, result.title, result.phases,
                         journal, result.plot, started, time.time())
    except Exception as exc:  # a report must not change a verdict
        result.notes.append(f"allure results failed: {exc}")
    return result


def clear_allure(reports: Path) -> None:
    """Remove earlier chaos results from ``reports/allure-results`` (conformance's stay)."""
    d = reports / "allure-results"
    for f in d.glob("*-result.json") if d.exists() else []:
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if str(doc.get("fullName", "")).startswith("chaos/experiments/"):
            for a in [x.get("source") for st in doc.get("steps") or []
                      for x in st.get("attachments") or []] + [
                    x.get("source") for x in doc.get("attachments") or []]:
                if a:
                    (d / a).unlink(missing_ok=True)
            f.unlink(missing_ok=True)


def _read_events(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []


def _met(state: Any) -> bool:
    return bool(state) and bool(state.get("steady_state_met"))


def _epoch(iso: Any) -> float:
    from datetime import datetime, timezone

    try:
        d = datetime.fromisoformat(str(iso))
    except ValueError:
        return 0.0
    return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()


def _phase_samples(journal: dict[str, Any], series: list[dict[str, Any]] | None = None
                   ) -> dict[str, Any]:
    """Each hypothesis check per phase: every probe's output, tolerance and verdict, and
    the probe batches it sent (the time series entries that started within it)."""
    ss = journal.get("steady_states") or {}
    samples = series or []

    def probes(state: Any) -> list[dict[str, Any]]:
        out = []
        for p in (state or {}).get("probes", []):
            t0, t1 = _epoch(p.get("start")), _epoch(p.get("end"))
            out.append({"name": p["activity"]["name"], "output": p.get("output"),
                        "tolerance": p["activity"].get("tolerance"), "status": p.get("status"),
                        "met": p.get("tolerance_met"), "start": p.get("start"),
                        "end": p.get("end"),
                        "samples": [x for x in samples if t0 - 0.5 <= x["t0"] <= t1 + 0.5]})
        return out

    return {"before": {"met": _met(ss.get("before")), "probes": probes(ss.get("before"))},
            "during": [{"met": _met(s), "probes": probes(s)} for s in ss.get("during") or []],
            "after": {"met": _met(ss.get("after")), "probes": probes(ss.get("after"))}}


def judge(name: str, experiment: dict[str, Any], journal: dict[str, Any], duration: float,
          left: list[str]) -> Result:
    ss = journal.get("steady_states") or {}
    during = ss.get("during") or []
    runs = journal.get("run") or []
    rollbacks = journal.get("rollbacks") or []
    ok = lambda b: "PASS" if b else "FAIL"  # noqa: E731
    phases = {
        "before": ok(_met(ss.get("before"))),
        "during": ok(bool(during) and all(_met(s) for s in during)),
        "method": ok(bool(runs) and all(r.get("status") == "succeeded" for r in runs)),
        "after": ok(_met(ss.get("after"))),
        "rollbacks": ok(all(r.get("status") == "succeeded" for r in rollbacks) and not left),
    }
    if journal.get("status") == "interrupted":
        phases = {k: "FAIL" if v == "PASS" and k != "rollbacks" else v for k, v in phases.items()}
    notes = [f"{r['activity']['name']}: {r.get('exception', [''])[-1].strip()}"
             for r in runs if r.get("status") != "succeeded" and r.get("exception")]
    m = next((e for e in experiment.get("extensions") or [] if e.get("name") == "meshproof"), {})
    return Result(name, experiment.get("title", name), list(m.get("catches") or []), phases,
                  duration, status=str(journal.get("status", "")), notes=notes)


def _allure(result: Result, journal: dict[str, Any]) -> None:
    """Allure steps per phase, when running under pytest with allure (else nothing)."""
    try:
        import allure
    except ImportError:
        return
    try:
        for phase, verdict in result.phases.items():
            with allure.step(f"{phase}: {verdict}"):
                pass
        allure.attach(json.dumps(journal.get("meshproof", {}), indent=1, default=str),
                      name=f"{result.name} meshproof journal",
                      attachment_type=allure.attachment_type.JSON)
        if result.plot:
            allure.attach.file(result.plot, name=f"{result.name}.png",
                               attachment_type=allure.attachment_type.PNG)
    except Exception:
        pass
