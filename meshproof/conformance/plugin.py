"""Conformance behaviour of the pytest plugin: gating, evidence, reports, summary.

- Gating: a check whose features the mesh does not claim (or that the user
  exempts) is skipped with the reason; against the reference mesh, which
  claims every feature, an unclaimed feature is a failure, not a skip.
- Evidence: the ``verdict`` fixture records each judgement (design, counts)
  and attaches it to Allure; a failing check also gets the mesh's evidence
  (generated config, Envoy config dump, stats) of the pods it touched.
- Reports: ``--conformance-report PATH`` writes the ConformanceReport YAML;
  the terminal gets one line per check and a summary.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from meshproof.conformance.check import FEATURES, CheckSpec, spec_of
from meshproof.conformance.report import CheckResult, write_report
from meshproof.conformance.stats import Design

MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


def claims_for(mesh: str) -> frozenset[str]:
    if mesh == "reference":
        from meshproof.mesh.reference import CLAIMS

        return CLAIMS
    return frozenset()


@dataclass
class Verdict:
    """What one check saw and how it judged: the evidence a reviewer reads."""

    spec: CheckSpec
    lines: list[str] = field(default_factory=list)
    judgements: list[dict[str, Any]] = field(default_factory=list)
    pods: set[str] = field(default_factory=set)

    def note(self, line: str) -> None:
        self.lines.append(line)

    def step(self, line: str) -> None:
        """A judgement as an Allure step (the report's outline of the check)."""
        try:
            import allure

            with allure.step(line):
                pass
        except ImportError:
            pass

    def attach(self, name: str, data: Any) -> None:
        try:
            import allure

            allure.attach(json.dumps(data, indent=1, default=str), name=name,
                          attachment_type=allure.attachment_type.JSON)
        except ImportError:  # allure-pytest is a dependency; keep the core usable without it
            pass

    def touch(self, *pods: str) -> None:
        """Pods whose sidecar evidence belongs in a failure report."""
        self.pods.update(pods)

    def judge(self, label: str, design: Design, hits: int, evidence: dict[str, Any]) -> bool:
        ok = design.passes(hits)
        line = (f"{label}: {hits}/{design.n} (pass band {design.lo}..{design.hi}) "
                f"{'ok' if ok else 'OUT OF BAND'}")
        self.note(line)
        self.step(line)
        entry = {"label": label, "hits": hits, "ok": ok, "design": design.to_dict(),
                 "method": design.describe(), **evidence}
        self.judgements.append(entry)
        self.attach(f"judgement: {label}", entry)
        return ok

    def exact(self, label: str, ok: bool, evidence: dict[str, Any]) -> bool:
        """A deterministic judgement (e.g. every denied request denied)."""
        self.note(f"{label}: {'ok' if ok else 'FAILED'}")
        self.step(f"{label}: {'ok' if ok else 'FAILED'}")
        entry = {"label": label, "ok": ok, **evidence}
        self.judgements.append(entry)
        self.attach(f"judgement: {label}", entry)
        return ok


class ConformancePlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, CheckResult] = {}
        self.started = time.time()
        self.verdicts: dict[str, Verdict] = {}

    # ------------------------------------------------------------ selection

    def _enabled(self) -> tuple[set[str], set[str]]:
        mesh = self.config.getoption("--mesh")
        claimed = set(claims_for(mesh))
        supported = {f for f in self.config.getoption("--supported-features").split(",") if f}
        exempt = {f for f in self.config.getoption("--exempt-features").split(",") if f}
        for f in supported | exempt:
            if f not in FEATURES:
                raise pytest.UsageError(f"unknown feature {f!r}; features: "
                                        f"{', '.join(sorted(FEATURES))}")
        return (supported or claimed) - exempt, exempt

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        if config.getoption("--list-checks"):
            for item in items:
                spec = spec_of(item)
                if spec:
                    print(f"{spec.name:<34} {', '.join(spec.features):<34} "
                          f"catches: {', '.join(spec.catches) or '-'}\n    {spec.description}")
            pytest.exit("listed the checks", 0)
        catching = config.getoption("--catching")
        if catching:
            keep = [i for i in items if (s := spec_of(i)) and catching in s.catches]
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep
        enabled, exempt = self._enabled()
        reference = config.getoption("--mesh") == "reference"
        for item in items:
            spec = spec_of(item)
            if spec is None:
                continue
            missing = [f for f in spec.features if f not in enabled]
            if not missing:
                continue
            reason = f"needs {', '.join(missing)}, which the mesh does not claim"
            if reference and not (set(missing) & exempt):
                item.add_marker(pytest.mark.usefixtures("_unclaimed_is_failure"))
                item.user_properties.append(("unclaimed", reason))
            else:
                item.add_marker(pytest.mark.skip(reason=reason))

    # ------------------------------------------------------------ per check

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Any:
        outcome = yield
        report = outcome.get_result()
        spec = spec_of(item)
        if spec is None:
            return
        verdict = self.verdicts.get(item.nodeid)
        if report.when == "call" and report.failed and verdict is not None:
            mesh = getattr(item, "funcargs", {}).get("mesh")
            if mesh is not None and verdict.pods:
                try:
                    verdict.attach("mesh evidence (config dump, stats)",
                                   mesh.evidence(sorted(verdict.pods)))
                except Exception as exc:  # evidence must never hide the verdict
                    verdict.note(f"(could not collect mesh evidence: {exc})")
        if report.when == "call" or (report.when == "setup" and not report.passed):
            status = "skipped" if report.skipped else ("passed" if report.passed else "failed")
            reason = ""
            if report.skipped and isinstance(report.longrepr, tuple):
                reason = str(report.longrepr[2])
            elif report.failed:
                reason = report.longreprtext.strip().splitlines()[-1][:300] \
                    if report.longreprtext else ""
            self.results[spec.name] = CheckResult(
                spec=spec, result=status, duration_s=round(report.duration, 3),
                reason=reason, lines=list(verdict.lines) if verdict else [],
                judgements=list(verdict.judgements) if verdict else [])

    # ------------------------------------------------------------ the end

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        tr = terminalreporter
        tr.section("meshproof conformance")
        for name, r in self.results.items():
            tr.write_line(f"{MARK[r.result]}  {name:<34} {r.duration_s:6.1f}s  "
                          f"{(r.lines[-1] if r.lines else r.reason)[:110]}")
        counts = {k: sum(r.result == k for r in self.results.values())
                  for k in ("passed", "failed", "skipped")}
        tr.write_line(f"checks: {counts['passed']} passed, {counts['failed']} failed, "
                      f"{counts['skipped']} skipped")
        path = self.config.getoption("--conformance-report")
        if path:
            write_report(path, self.config, list(self.results.values()),
                         time.time() - self.started)
            tr.write_line(f"conformance report: {path}")


@pytest.fixture
def verdict(request: pytest.FixtureRequest) -> Verdict:
    spec = spec_of(request.node)
    if spec is None:
        raise pytest.UsageError("the verdict fixture is for conformance checks")
    plugin: ConformancePlugin = request.config.pluginmanager.get_plugin("meshproof-conformance")
    v = Verdict(spec)
    plugin.verdicts[request.node.nodeid] = v
    return v


@pytest.fixture
def _unclaimed_is_failure(request: pytest.FixtureRequest) -> None:
    reason = dict(request.node.user_properties).get("unclaimed", "")
    pytest.fail(f"the reference mesh must claim every feature: {reason}")
