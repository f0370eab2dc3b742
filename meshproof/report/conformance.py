"""The ConformanceReport YAML.

Shaped like Gateway API's ConformanceReport (implementation, date,
``gatewayAPIVersion``/``gatewayAPIChannel``, profiles with a result,
statistics, supported and unsupported features, failed and skipped tests).
``profiles[0]`` (MESHPROOF) is the whole run, what ``meshproof diff``
compares; then Gateway API's MESH-HTTP and MESH-GRPC profiles, exactly as
Gateway API splits them (core / extended, ``succeededProvisionalTests``,
tests named by Gateway API's ShortNames: meshproof/conformance/gatewayapi.py);
then meshproof's own profiles for what Gateway API does not test (mTLS,
access, resilience, routing beyond Gateway API's cases). Plus what meshproof adds: run metadata (meshproof, mesh and
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
from meshproof.conformance import gatewayapi
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


def _outcome(failed: int, skipped: int) -> str:
    return "failure" if failed else "partial" if skipped else "success"


def _stats(results: list[CheckResult]) -> dict[str, int]:
    return {k.capitalize().replace("-r", "R"): sum(r.result == k for r in results)
            for k in RESULTS}


def _summary(results: list[CheckResult], interrupted: bool = False) -> dict[str, Any]:
    stats = _stats(results)
    result = ("interrupted" if interrupted else
              _outcome(stats["Failed"], stats["Skipped"]))
    return {"result": result, "statistics": stats,
            "failedTests": sorted(r.spec.name for r in results if r.result == "failed"),
            "skippedTests": sorted(r.spec.name for r in results if r.result == "skipped"),
            "notRunTests": sorted(r.spec.name for r in results if r.result == "not-run")}


def _gateway_section(tests: list[tuple[gatewayapi.GatewayTest, str]]) -> dict[str, Any]:
    """One core or extended section: Gateway API counts a test it could not run
    (not claimed, not selected, no meshproof check) as skipped."""
    passed = sorted(t.name for t, r in tests if r == "passed")
    failed = sorted(t.name for t, r in tests if r == "failed")
    skipped = sorted(t.name for t, r in tests if r not in ("passed", "failed"))
    out: dict[str, Any] = {"result": _outcome(len(failed), len(skipped)),
                           "statistics": {"Failed": len(failed), "Passed": len(passed),
                                          "Skipped": len(skipped)}}
    if failed:
        out["failedTests"] = failed
    if skipped:
        out["skippedTests"] = skipped
    return out


def _gateway_profiles(results: list[CheckResult]) -> list[dict[str, Any]]:
    by_check = {r.spec.name: r.result for r in results}
    profiles = []
    for name in (gatewayapi.MESH_HTTP, gatewayapi.MESH_GRPC):
        tests = [(t, by_check.get(t.check, "no-check" if not t.check else "not-selected"))
                 for t in gatewayapi.TESTS if t.profile == name]
        core = [(t, r) for t, r in tests if not t.extended]
        ext = [(t, r) for t, r in tests if t.extended]
        supported = sorted({f for t, r in ext if r == "passed" for f in t.extended_features})
        extended = {**_gateway_section(ext), "supportedFeatures": supported,
                    "unsupportedFeatures": sorted({f for t, _ in ext for f in t.extended_features}
                                                  - set(supported))}
        profile: dict[str, Any] = {"name": name, "core": _gateway_section(core),
                                   "extended": extended}
        provisional = sorted(t.name for t, r in tests if t.provisional and r == "passed")
        if provisional:
            profile["succeededProvisionalTests"] = provisional
        profile["summary"] = (f"Core tests {_word(profile['core']['result'])}. "
                              f"Extended tests {_word(extended['result'])}.")
        profiles.append(profile)
    return profiles


def _word(result: str) -> str:
    return {"success": "succeeded", "partial": "partially succeeded"}.get(result, "failed")


#: meshproof's own profiles (what Gateway API does not test), by a check's first feature.
OWN_PROFILES = {
    "MESHPROOF-MTLS": ("mtls-strict", "mtls-permissive", "mtls-workload-override",
                       "xfcc-spiffe", "server-identity", "cert-validation"),
    "MESHPROOF-ACCESS": ("access-control", "access-control-routes"),
    "MESHPROOF-RESILIENCE": ("retries", "timeouts", "fault-injection"),
}


def _own_profiles(results: list[CheckResult]) -> list[dict[str, Any]]:
    own = [r for r in results if r.spec.name not in gatewayapi.BY_CHECK]
    groups: dict[str, list[CheckResult]] = {}
    for r in own:
        first = r.spec.features[0] if r.spec.features else ""
        name = next((p for p, fs in OWN_PROFILES.items() if first in fs), "MESHPROOF-ROUTING")
        groups.setdefault(name, []).append(r)
    return [{"name": n, "summary": _summary(groups[n])}
            for n in (*OWN_PROFILES, "MESHPROOF-ROUTING") if n in groups]


def build_report(run: RunInfo, results: list[CheckResult]) -> dict[str, Any]:
    claimed = sorted(run.claims)
    waits = [w for r in results for w in r.programmed_s]
    return {
        "apiVersion": API_VERSION,
        "kind": "ConformanceReport",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gatewayAPIVersion": gatewayapi.VERSION,
        "gatewayAPIChannel": gatewayapi.CHANNEL,
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
            "name": "MESHPROOF",
            "summary": _summary(results, run.interrupted),
            "supportedFeatures": claimed,
            "unsupportedFeatures": sorted(set(FEATURES) - set(claimed)),
        }, *_gateway_profiles(results), *_own_profiles(results)],
        "checks": [{"name": r.spec.name, "description": r.spec.description,
                    **({"gatewayAPITest": gatewayapi.BY_CHECK[r.spec.name].name}
                       if r.spec.name in gatewayapi.BY_CHECK else {}),
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
