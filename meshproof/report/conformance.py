"""The ConformanceReport YAML.

Shaped like Gateway API's ConformanceReport (implementation, date, profiles
with a result, statistics, supported and unsupported features, failed and
skipped tests), plus what meshproof adds: run metadata (meshproof, mesh and
Envoy versions, target, defect, seed, how "programmed" was decided and how
long each wait took) and each check's judgements (sample size, pass band,
both error rates, counts), so a report is its own evidence. An interrupted
run says so: ``result: interrupted`` and the checks that never ran.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshproof import __version__
from meshproof.conformance.spec import FEATURES, CheckSpec

API_VERSION = "conformance.meshproof.dev/v1alpha1"
RESULTS = ("passed", "failed", "skipped", "not-run")


@dataclass
class CheckResult:
    spec: CheckSpec
    result: str  # one of RESULTS
    duration_s: float
    reason: str = ""
    lines: list[str] = field(default_factory=list)
    judgements: list[dict[str, Any]] = field(default_factory=list)
    #: Seconds each wait_programmed of this check took.
    programmed_s: list[float] = field(default_factory=list)
    #: Components that crashed and were restarted while the check ran ("name xN").
    restarts: list[str] = field(default_factory=list)


@dataclass
class RunInfo:
    mesh: str
    target: str
    mesh_version: str = "unknown"
    programmed_method: str = "unknown"
    mesh_details: dict[str, str] = field(default_factory=dict)
    claims: frozenset[str] = frozenset()
    defect: str = ""
    seed: int | None = None
    bringup_s: float = 0.0
    duration_s: float = 0.0
    interrupted: bool = False


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def build_report(run: RunInfo, results: list[CheckResult]) -> dict[str, Any]:
    claimed = sorted(run.claims)
    stats = {k.capitalize().replace("-r", "R"): sum(r.result == k for r in results)
             for k in RESULTS}
    result = ("interrupted" if run.interrupted else "failure" if stats["Failed"]
              else "partial" if stats["Skipped"] else "success")
    waits = [w for r in results for w in r.programmed_s]
    return {
        "apiVersion": API_VERSION,
        "kind": "ConformanceReport",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "implementation": {"organization": "meshproof", "project": f"{run.mesh}-mesh",
                           "version": run.mesh_version, "contact": []},
        "mode": "default",
        "run": {"meshproof": __version__, "mesh": run.mesh, "defect": run.defect or None,
                "envoy": run.mesh_details.get("envoy"), "target": run.target,
                "seed": run.seed, "host": platform.node(),
                "python": platform.python_version(), "duration_s": round(run.duration_s, 1),
                "bringup_s": round(run.bringup_s, 1),
                "checks_s": round(sum(r.duration_s for r in results), 1),
                "interrupted": run.interrupted,
                "programmed": {"method": run.programmed_method, "waits": len(waits),
                               "p50_s": round(_quantile(waits, 0.5), 3),
                               "max_s": round(max(waits, default=0.0), 3)}},
        "profiles": [{
            "name": "MESH-HTTP",
            "summary": {"result": result, "statistics": stats,
                        "failedTests": sorted(r.spec.name for r in results
                                              if r.result == "failed"),
                        "skippedTests": sorted(r.spec.name for r in results
                                               if r.result == "skipped"),
                        "notRunTests": sorted(r.spec.name for r in results
                                              if r.result == "not-run")},
            "supportedFeatures": claimed,
            "unsupportedFeatures": sorted(set(FEATURES) - set(claimed)),
        }],
        "checks": [{"name": r.spec.name, "description": r.spec.description,
                    "features": list(r.spec.features), "catches": list(r.spec.catches),
                    "result": r.result, "duration_s": r.duration_s,
                    **({"reason": r.reason} if r.reason else {}),
                    "programmed_s": [round(w, 3) for w in r.programmed_s],
                    **({"restarts": r.restarts} if r.restarts else {}),
                    "verdict": r.lines, "judgements": r.judgements} for r in results],
    }


def write_report(path: str | Path, run: RunInfo, results: list[CheckResult]
                 ) -> dict[str, Any]:
    report = build_report(run, results)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(yaml.safe_dump(report, sort_keys=False, width=100))
    tmp.replace(p)  # a reader never sees half a report
    return report
