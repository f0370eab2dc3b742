"""What changed between two ConformanceReports (before and after an upgrade).

Reports come from files a user names, so they are validated before they are
compared: anything that is not a report of this shape is a ConfigError that
names the file and the field, never a traceback (the CLI exits 2 on it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from meshproof.errors import ConfigError

#: Reports are small; a file far larger is not one (and must not be parsed whole).
MAX_BYTES = 64 * 1024 * 1024
RUN_KEYS = ("mesh", "defect", "envoy", "target", "meshproof")


def _require(cond: bool, path: str | Path, what: str) -> None:
    if not cond:
        raise ConfigError(f"{path} is not a meshproof ConformanceReport: {what}",
                          "pass files written by --conformance-report")


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a report, or raise ConfigError saying what is wrong."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read report {path}: {exc.strerror}") from exc
    _require(len(raw) <= MAX_BYTES, path, f"larger than {MAX_BYTES // 2**20} MB")
    try:
        data = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not YAML: {str(exc)[:200]}") from exc
    _require(isinstance(data, dict), path, "not a mapping")
    _require(data.get("kind") == "ConformanceReport", path, "kind is not ConformanceReport")
    _require(isinstance(data.get("run", {}), dict), path, "run is not a mapping")
    profiles = data.get("profiles")
    _require(isinstance(profiles, list) and bool(profiles) and isinstance(profiles[0], dict),
             path, "profiles is not a non-empty list of mappings")
    summary = profiles[0].get("summary")
    _require(isinstance(summary, dict) and isinstance(summary.get("result"), str), path,
             "profiles[0].summary.result is missing")
    _require(isinstance(profiles[0].get("supportedFeatures", []), list), path,
             "profiles[0].supportedFeatures is not a list")
    checks = data.get("checks", [])
    _require(isinstance(checks, list), path, "checks is not a list")
    for i, c in enumerate(checks):
        _require(isinstance(c, dict) and isinstance(c.get("name"), str)
                 and isinstance(c.get("result"), str), path,
                 f"checks[{i}] has no name and result")
    return data  # type: ignore[no-any-return]


def diff_reports(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human lines: what changed from run ``a`` to run ``b`` (empty = nothing)."""
    out: list[str] = []
    for key in RUN_KEYS:
        va, vb = a.get("run", {}).get(key), b.get("run", {}).get(key)
        if va != vb:
            out.append(f"run.{key}: {va} -> {vb}")
    pa, pb = a["profiles"][0], b["profiles"][0]
    if pa["summary"]["result"] != pb["summary"]["result"]:
        out.append(f"result: {pa['summary']['result']} -> {pb['summary']['result']}")
    fa, fb = set(map(str, pa.get("supportedFeatures", []))), set(
        map(str, pb.get("supportedFeatures", [])))
    for f in sorted(fa ^ fb):
        out.append(f"feature {f}: {'dropped' if f in fa else 'added'}")
    out += _gateway_changes(a, b)
    ca = {c["name"]: c for c in a.get("checks", [])}
    cb = {c["name"]: c for c in b.get("checks", [])}
    for name in sorted(set(ca) | set(cb)):
        ra = ca.get(name, {}).get("result", "absent")
        rb = cb.get(name, {}).get("result", "absent")
        if ra != rb:
            why = str(cb.get(name, {}).get("reason", ""))[:200]
            out.append(f"check {name}: {ra} -> {rb}" + (f"  ({why})" if why else ""))
    return out


def _gateway_changes(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Gateway API profile results (core / extended) that changed; a report from before
    the Gateway API profiles existed simply has none to compare."""
    def sections(r: dict[str, Any]) -> dict[str, str]:
        out = {}
        for p in r.get("profiles", [])[1:]:
            if not isinstance(p, dict):
                continue
            for part in ("core", "extended"):
                sec = p.get(part)
                if isinstance(sec, dict) and isinstance(sec.get("result"), str):
                    out[f"{p.get('name')} {part}"] = sec["result"]
        return out

    sa, sb = sections(a), sections(b)
    return [f"profile {k}: {sa[k]} -> {sb[k]}" for k in sorted(set(sa) & set(sb))
            if sa[k] != sb[k]]
