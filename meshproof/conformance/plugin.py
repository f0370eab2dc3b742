"""Conformance behaviour of the pytest plugin: gating, evidence, reports, summary.

- Gating: a check whose features the mesh does not claim (``mesh.claims()``),
  or that the user exempts, is skipped with the reason; so is one needing a
  target or mesh capability that is absent. Against the reference mesh on
  the local lab nothing may be missing: there a missing claim or capability
  is a failure, not a skip.
- Evidence: the ``verdict`` fixture records each judgement (design, counts)
  and attaches it to Allure; a failing check also gets the mesh's evidence
  (generated config, Envoy config dump, stats) of the pods it touched.
- Reports: ``--conformance-report PATH`` writes the ConformanceReport YAML
  (also after Ctrl-C: ``interrupted``, with the checks that never ran); the
  terminal gets one line per check (the failing judgement for a FAIL) and a
  summary.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from meshproof import registry
from meshproof.conformance.check import spec_of
from meshproof.conformance.spec import FEATURES, CheckSpec
from meshproof.mesh.base import MeshAdapter
from meshproof.report.conformance import CheckResult, RunInfo, write_report
from meshproof.targets.base import Target
from meshproof.verdict.judgement import Verdict

MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "not-run": "----"}
#: Where nothing may be skipped: the reference mesh (either adapter) on the local lab.
COMPLETE = {("local", "reference"), ("local", "reference-blackbox")}


class ConformancePlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: dict[str, CheckResult] = {}
        self.started = time.time()
        self.verdicts: dict[str, Verdict] = {}
        self.specs: list[CheckSpec] = []
        self.interrupted = False
        self.why = ""
        self.mesh: MeshAdapter | None = None
        self._waits_at: dict[str, int] = {}
        self._restarts_at: dict[str, tuple[Target, dict[str, int]]] = {}

    @property
    def complete(self) -> bool:
        return (self.config.getoption("--target"), self.config.getoption("--mesh")) in COMPLETE

    # ------------------------------------------------------------ selection

    def _user_features(self) -> tuple[set[str], set[str]]:
        supported = {f for f in self.config.getoption("--supported-features").split(",") if f}
        exempt = {f for f in self.config.getoption("--exempt-features").split(",") if f}
        for f in supported | exempt:
            if f not in FEATURES:
                raise pytest.UsageError(f"unknown feature {f!r}; features: "
                                        f"{', '.join(sorted(FEATURES))}")
        return supported, exempt

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
        supported, exempt = self._user_features()
        for item in items:
            spec = spec_of(item)
            if spec is None:
                continue
            left_out = [f for f in spec.features
                        if f in exempt or (supported and f not in supported)]
            if left_out:
                item.add_marker(pytest.mark.skip(
                    reason=f"needs {', '.join(left_out)}, left out by the feature options"))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The checks this run will make (after -k and other deselection): a check that
        never reports is ``not-run`` in the report."""
        self.specs = [s for i in session.items if (s := spec_of(i)) is not None]

    def gate(self, spec: CheckSpec, target: Target, mesh: MeshAdapter) -> None:
        """Skip (or, where nothing may be missing, fail) a check the run cannot make."""
        self.mesh = mesh
        missing = [f"feature {f} (not claimed by mesh {mesh.name})"
                   for f in spec.features if f not in mesh.claims()]
        missing += [f"target capability {c} (target {target.name} lacks it)"
                    for c in spec.target_needs if not target.supports(c)]
        missing += [f"mesh capability {c} (mesh {mesh.name} lacks it)"
                    for c in spec.mesh_needs if not mesh.supports(c)]
        if not missing:
            return
        reason = "needs " + "; ".join(missing)
        if self.complete:
            pytest.fail(f"the reference mesh on the local target must run every check: "
                        f"{reason}")
        pytest.skip(reason)

    # ------------------------------------------------------------ per check

    def began(self, nodeid: str, target: Target, mesh: MeshAdapter) -> None:
        self._waits_at[nodeid] = len(mesh.waits)
        self._restarts_at[nodeid] = (target, target.restarts())

    def _restarted(self, nodeid: str) -> list[str]:
        """Components that crashed (and came back) while ``nodeid`` ran."""
        if nodeid not in self._restarts_at:
            return []
        target, before = self._restarts_at.pop(nodeid)
        try:
            now = target.restarts()
        except Exception:  # a dead target is reported by the check itself
            return []
        return [f"{n} x{c - before.get(n, 0)}" for n, c in now.items() if c > before.get(n, 0)]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Any:
        outcome = yield
        report = outcome.get_result()
        spec = spec_of(item)
        if spec is None:
            return
        verdict = self.verdicts.get(item.nodeid)
        mesh = getattr(item, "funcargs", {}).get("mesh")
        if report.when == "call" and report.failed and verdict is not None:
            if mesh is not None and verdict.pods:
                try:
                    verdict.attach("mesh evidence (config dump, stats)",
                                   mesh.evidence(list(verdict.pods.values())))
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
            waits: list[float] = []
            if mesh is not None and item.nodeid in self._waits_at:
                waits = [w.seconds for w in mesh.waits[self._waits_at[item.nodeid]:]]
            restarts = self._restarted(item.nodeid)
            if restarts and verdict is not None:
                verdict.note(f"component restarted during the check: {', '.join(restarts)}")
                verdict.attach("component restarts", restarts)
            self.results[spec.name] = CheckResult(
                spec=spec, result=status, duration_s=round(report.duration, 3),
                reason=reason, lines=list(verdict.lines) if verdict else [],
                judgements=list(verdict.judgements) if verdict else [], programmed_s=waits,
                restarts=restarts)

    # ------------------------------------------------------------ the end

    def pytest_keyboard_interrupt(self, excinfo: Any) -> None:
        """Ctrl-C, SIGTERM, or pytest.exit (the target could not come up): the checks
        left are ``not-run`` with this reason, and the report says ``interrupted``."""
        self.interrupted = True
        self.why = ("interrupted (Ctrl-C)" if excinfo.typename == "KeyboardInterrupt"
                    else str(excinfo.value).splitlines()[0][:200])

    def _all_results(self) -> list[CheckResult]:
        """Every selected check: those that never ran are ``not-run``."""
        out = list(self.results.values())
        out += [CheckResult(spec=s, result="not-run", duration_s=0.0,
                            reason=f"never ran: {self.why}" if self.interrupted
                            else "never ran")
                for s in self.specs if s.name not in self.results]
        return out

    def run_info(self) -> RunInfo:
        from meshproof.pytest_plugin import TIMINGS

        cfg = self.config
        info = RunInfo(mesh=cfg.getoption("--mesh"), target=cfg.getoption("--target"),
                       defect=cfg.getoption("--mesh-defect"), seed=cfg.getoption("--seed"),
                       bringup_s=TIMINGS.get("bringup_s", 0.0),
                       duration_s=time.time() - self.started, interrupted=self.interrupted)
        if self.mesh is not None:
            d = self.mesh.describe()
            info.mesh_version, info.programmed_method = d.version, d.programmed_method
            info.mesh_details, info.claims = dict(d.details), self.mesh.claims()
        return info

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.getoption("--conformance-report")
        if path and self.specs:
            write_report(path, self.run_info(), self._all_results())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        results = self._all_results() if self.specs else []
        if not results:
            return
        tr = terminalreporter
        tr.section("meshproof conformance")
        for r in results:
            v = self.verdicts.get(next((n for n, x in self.verdicts.items()
                                        if x.name == r.spec.name), ""))
            line = (v.headline() if v and r.result == "failed" and v.failed_lines
                    else (r.lines[-1] if r.lines and r.result == "passed" else r.reason))
            tr.write_line(f"{MARK[r.result]}  {r.spec.name:<34} {r.duration_s:6.1f}s  "
                          f"{line[:110]}")
        counts = {k: sum(r.result == k for r in results)
                  for k in ("passed", "failed", "skipped", "not-run")}
        tr.write_line(f"checks: {counts['passed']} passed, {counts['failed']} failed, "
                      f"{counts['skipped']} skipped"
                      + (f", {counts['not-run']} not run (interrupted)" if self.interrupted
                         else ""))
        path = self.config.getoption("--conformance-report")
        if path:
            tr.write_line(f"conformance report: {path}")


def _plugin(config: pytest.Config) -> ConformancePlugin:
    return config.pluginmanager.get_plugin("meshproof-conformance")  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def _meshproof_gate(request: pytest.FixtureRequest) -> None:
    """Before a check's own fixtures: skip it (with the reason) if the run cannot make it."""
    spec = spec_of(request.node)
    if spec is None:
        return
    from meshproof.pytest_plugin import adapter

    target: Target = request.getfixturevalue("target")
    plugin = _plugin(request.config)
    mesh = adapter(request.config, target)
    plugin.gate(spec, target, mesh)
    plugin.began(request.node.nodeid, target, mesh)


@pytest.fixture
def verdict(request: pytest.FixtureRequest) -> Verdict:
    spec = spec_of(request.node)
    if spec is None:
        raise pytest.UsageError("the verdict fixture is for conformance checks")
    v = Verdict(spec.name)
    _plugin(request.config).verdicts[request.node.nodeid] = v
    return v


__all__ = ["ConformancePlugin", "registry"]
