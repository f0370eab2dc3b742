"""The ConformanceReport YAML, and the diff of two of them.

Shaped like Gateway API's ConformanceReport (implementation, date, profiles
with a result, statistics, supported and unsupported features, failed and
skipped tests), plus what meshproof adds: run metadata (meshproof, mesh and
Envoy versions, target, defect, seed) and each check's judgements (sample
size, pass band, both error rates, counts), so a report is its own evidence.
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshproof import __version__
from meshproof.conformance.check import FEATURES, CheckSpec
from meshproof.errors import ConfigError
from meshproof.pytest_plugin import TIMINGS

API_VERSION = "conformance.meshproof.dev/v1alpha1"


@dataclass
class CheckResult:
    spec: CheckSpec
    result: str  # passed | failed | skipped
    duration_s: float
    reason: str = ""
    lines: list[str] = field(default_factory=list)
    judgements: list[dict[str, Any]] = field(default_factory=list)


def _envoy_version() -> str:
    try:
        from refmesh.envoy_binary import envoy_version

        return envoy_version()
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def build_report(opts: dict[str, Any], results: list[CheckResult], duration_s: float
                 ) -> dict[str, Any]:
    from meshproof.conformance.plugin import claims_for

    mesh = opts["mesh"]
    claimed = sorted(claims_for(mesh))
    stats = {k.capitalize(): sum(r.result == k for r in results)
             for k in ("passed", "failed", "skipped")}
    result = ("failure" if stats["Failed"] else "partial" if stats["Skipped"]
              else "success")
    return {
        "apiVersion": API_VERSION,
        "kind": "ConformanceReport",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "implementation": {"organization": "meshproof", "project": f"{mesh}-mesh",
                           "version": __version__ if mesh == "reference" else "unknown",
                           "contact": []},
        "mode": "default",
        "run": {"meshproof": __version__, "mesh": mesh, "defect": opts.get("defect") or None,
                "envoy": _envoy_version() if mesh == "reference" else None,
                "target": opts["target"], "seed": opts.get("seed"),
                "host": platform.node(), "python": platform.python_version(),
                "duration_s": round(duration_s, 1),
                "bringup_s": round(opts.get("bringup_s", 0.0), 1),
                "checks_s": round(sum(r.duration_s for r in results), 1)},
        "profiles": [{
            "name": "MESH-HTTP",
            "summary": {"result": result, "statistics": stats,
                        "failedTests": sorted(r.spec.name for r in results
                                              if r.result == "failed"),
                        "skippedTests": sorted(r.spec.name for r in results
                                               if r.result == "skipped")},
            "supportedFeatures": claimed,
            "unsupportedFeatures": sorted(set(FEATURES) - set(claimed)),
        }],
        "checks": [{"name": r.spec.name, "description": r.spec.description,
                    "features": list(r.spec.features), "catches": list(r.spec.catches),
                    "result": r.result, "duration_s": r.duration_s,
                    **({"reason": r.reason} if r.reason else {}),
                    "verdict": r.lines, "judgements": r.judgements} for r in results],
    }


def write_report(path: str | Path, config: Any, results: list[CheckResult],
                 duration_s: float) -> dict[str, Any]:
    opts = {"mesh": config.getoption("--mesh"), "target": config.getoption("--target"),
            "defect": config.getoption("--mesh-defect"), "seed": config.getoption("--seed"),
            "bringup_s": TIMINGS.get("bringup_s", 0.0)}
    report = build_report(opts, results, duration_s)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(report, sort_keys=False, width=100))
    return report


def load_report(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read report {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not YAML: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != "ConformanceReport":
        raise ConfigError(f"{path} is not a meshproof ConformanceReport",
                          "pass files written by --conformance-report")
    return data


def diff_reports(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human lines: what changed from run ``a`` to run ``b`` (empty = nothing)."""
    out: list[str] = []
    for key in ("mesh", "defect", "envoy", "target", "meshproof"):
        va, vb = a.get("run", {}).get(key), b.get("run", {}).get(key)
        if va != vb:
            out.append(f"run.{key}: {va} -> {vb}")
    pa, pb = a["profiles"][0], b["profiles"][0]
    if pa["summary"]["result"] != pb["summary"]["result"]:
        out.append(f"result: {pa['summary']['result']} -> {pb['summary']['result']}")
    for f in sorted(set(pa["supportedFeatures"]) ^ set(pb["supportedFeatures"])):
        out.append(f"feature {f}: {'dropped' if f in pa['supportedFeatures'] else 'added'}")
    ca = {c["name"]: c for c in a.get("checks", [])}
    cb = {c["name"]: c for c in b.get("checks", [])}
    for name in sorted(set(ca) | set(cb)):
        ra = ca.get(name, {}).get("result", "absent")
        rb = cb.get(name, {}).get("result", "absent")
        if ra != rb:
            why = cb.get(name, {}).get("reason", "")
            out.append(f"check {name}: {ra} -> {rb}" + (f"  ({why})" if why else ""))
    return out
