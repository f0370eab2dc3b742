"""What one check saw and how it judged: the evidence a reviewer reads.

Each judgement is either statistical (``judge``: a count against a design's
pass band, with both error rates) or exact (``exact``: every request must
behave). Judgements become report lines, Allure steps and JSON attachments.
The failing judgement, not the last one, is what a FAIL line shows.

A check whose design admits it (a control group that shows the evidence too
noisy to meet its error rates) may instead record ``cannot_judge``: neither
pass nor fail (``ok`` is None), and the check is then skipped with that
line as its reason, so the report says so (result ``partial``) with the
evidence attached, rather than failing a mesh it could not judge.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from meshproof.targets.model import Pod
from meshproof.verdict.stats import Design


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def plain(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, numbers, text): what reports hold."""
    return json.loads(json.dumps(value, default=_default))


def _allure() -> Any:
    try:
        import allure

        return allure
    except ImportError:  # allure-pytest is a dependency; keep the core usable without it
        return None


@dataclass
class Verdict:
    name: str
    lines: list[str] = field(default_factory=list)
    judgements: list[dict[str, Any]] = field(default_factory=list)
    pods: dict[str, Pod] = field(default_factory=dict)

    def note(self, line: str) -> None:
        self.lines.append(line)

    def step(self, line: str) -> None:
        """A judgement as an Allure step (the report's outline of the check)."""
        allure = _allure()
        if allure is not None:
            with allure.step(line):
                pass

    def attach(self, name: str, data: Any) -> None:
        allure = _allure()
        if allure is not None:
            allure.attach(json.dumps(data, indent=1, default=str), name=name,
                          attachment_type=allure.attachment_type.JSON)

    def touch(self, *pods: Pod) -> None:
        """Pods whose sidecar evidence belongs in a failure report."""
        for p in pods:
            self.pods[p.key] = p

    def _record(self, line: str, entry: dict[str, Any]) -> bool:
        entry = plain(entry)  # evidence may hold dataclasses (a CaptureSummary, ...)
        self.note(line)
        self.step(line)
        self.judgements.append(entry)
        self.attach(f"judgement: {entry['label']}", entry)
        return bool(entry["ok"])

    def cannot_judge(self, label: str, evidence: dict[str, Any]) -> str:
        """Record that the evidence cannot be judged at the check's error rates (``ok``
        None: neither pass nor fail); returns the line, the reason the check gives."""
        line = f"cannot judge: {label}"
        self._record(line, {"label": label, "ok": None, "cannot_judge": True, **evidence})
        return line

    def judge(self, label: str, design: Design, hits: int, evidence: dict[str, Any]) -> bool:
        ok = design.passes(hits)
        line = (f"{label}: {hits}/{design.n} (pass band {design.lo}..{design.hi}) "
                f"{'ok' if ok else 'OUT OF BAND'}")
        return self._record(line, {"label": label, "hits": hits, "ok": ok,
                                   "design": design.to_dict(), "method": design.describe(),
                                   **evidence})

    def exact(self, label: str, ok: bool, evidence: dict[str, Any]) -> bool:
        """A deterministic judgement (e.g. every denied request denied)."""
        return self._record(f"{label}: {'ok' if ok else 'FAILED'}",
                            {"label": label, "ok": ok, **evidence})

    @property
    def failed_lines(self) -> list[str]:
        """The lines of judgements that failed (what a FAIL line should show)."""
        bad = {j["label"] for j in self.judgements if j["ok"] is False}
        # A line is "<label>: <result>"; labels may hold colons themselves.
        return [ln for ln in self.lines if ln.rsplit(": ", 1)[0] in bad]

    def headline(self) -> str:
        """One line for the summary: the first failing judgement, else the last line."""
        failed = self.failed_lines
        return failed[0] if failed else (self.lines[-1] if self.lines else "")
