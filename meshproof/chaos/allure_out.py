"""Allure results for a chaos run: one test per experiment, one step per phase.

``meshproof chaos`` is not a pytest run, so allure-pytest's lifecycle is not
there; this writes the same result files (allure-python-commons' models and
file logger) into ``reports/allure-results``, so ``make report`` shows the
chaos run like a conformance run: each phase a step with its probe outputs,
the meshproof journal and the plot attached. Under pytest with allure the
runner adds steps to the running test instead (``runner._allure``).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

PHASES = ("before", "during", "method", "after", "rollbacks")


def _status(verdict: str) -> str:
    return {"PASS": "passed", "FAIL": "failed"}.get(verdict, "skipped")


def write(results_dir: Path, name: str, title: str, phases: dict[str, str],
          journal: dict[str, Any], plot: str, started: float, stopped: float) -> Path:
    """One Allure test result for one experiment; returns the result file."""
    from allure_commons.logger import AllureFileLogger
    from allure_commons.model2 import (Attachment, Label, StatusDetails, TestResult,
                                       TestStepResult)

    results_dir.mkdir(parents=True, exist_ok=True)
    log = AllureFileLogger(str(results_dir))
    mp = journal.get("meshproof") or {}
    ms = lambda t: int(t * 1000)  # noqa: E731
    marks = {m["phase"]: m["t"] for m in mp.get("marks") or []}
    hyp = mp.get("hypothesis") or {}

    def attach(body: str, label: str, ext: str, mime: str) -> Attachment:
        source = f"{uuid.uuid4()}-attachment.{ext}"
        log.report_attached_data(body.encode(), source)
        return Attachment(name=label, source=source, type=mime)

    steps = []
    for phase in PHASES:
        detail: Any = {"before": hyp.get("before"), "during": hyp.get("during"),
                       "after": hyp.get("after"), "rollbacks": mp.get("rollbacks"),
                       "method": [{"name": r["activity"]["name"], "status": r.get("status"),
                                   "output": r.get("output")}
                                  for r in journal.get("run") or []]}[phase]
        t = marks.get({"during": "method"}.get(phase, phase), started)
        steps.append(TestStepResult(
            name=f"{phase}: {phases.get(phase, '-')}", status=_status(phases.get(phase, "")),
            start=ms(t), stop=ms(t),
            attachments=[attach(json.dumps(detail, indent=1, default=str), f"{phase} evidence",
                                "json", "application/json")]))
    attachments = [attach(json.dumps(mp, indent=1, default=str), "meshproof journal",
                          "json", "application/json")]
    if plot and Path(plot).exists():
        source = f"{uuid.uuid4()}-attachment.png"
        log.report_attached_file(plot, source)
        attachments.append(Attachment(name=f"{name}.png", source=source, type="image/png"))
    passed = all(v == "PASS" for v in phases.values())
    failed = [p for p in PHASES if phases.get(p) == "FAIL"]
    result = TestResult(
        uuid=str(uuid.uuid4()), historyId=f"chaos:{name}", testCaseId=f"chaos:{name}",
        name=title, fullName=f"chaos/experiments/{name}.yaml", status=_status(
            "PASS" if passed else "FAIL"),
        statusDetails=None if passed else StatusDetails(
            message=f"phases failed: {', '.join(failed)}"),
        start=ms(started), stop=ms(stopped or time.time()), steps=steps,
        attachments=attachments,
        labels=[Label(name="suite", value="chaos"), Label(name="feature", value=name),
                *[Label(name="tag", value=f"catches:{d}") for d in mp.get("catches") or []]])
    log.report_result(result)
    return results_dir / f"{result.uuid}-result.json"
