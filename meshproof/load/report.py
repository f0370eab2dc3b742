"""The load report: a stable JSON document (schema in docs/load.md) and a terminal table."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from meshproof.load import hist

SCHEMA = "meshproof.load/v1"


def document(scenarios: dict[str, Any], settings: dict[str, Any], command: str,
             generator: dict[str, Any], mesh: dict[str, Any], target: str = "local"
             ) -> dict[str, Any]:
    return {"schema": SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command, "target": target,
            "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                     "python": platform.python_version()},
            "generator": generator, "mesh": mesh, "settings": settings,
            "valid": all(s["valid"] for s in scenarios.values()),
            "scenarios": scenarios}


def write(doc: dict[str, Any], out_dir: Path, stem: str = "") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem or time.strftime('load-%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    (out_dir / "latest.json").write_text(path.read_text())
    return path


def load(path: Path) -> dict[str, Any]:
    doc = json.loads(Path(path).read_text())
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {doc.get('schema')!r}, expected {SCHEMA!r}")
    return doc


def _ms(us: float) -> str:
    return f"{us / 1000:.3f}"


def table(doc: dict[str, Any]) -> str:
    """The terminal table: one block per scenario, percentiles as columns (ms)."""
    lines = []
    names = list(hist.PERCENTILES)
    for name, sc in doc["scenarios"].items():
        lines.append(f"{name} at {sc['rate_rps']:g} rps, {len(sc['rounds'])} rounds x "
                     f"{sc['duration_s']:g} s per path"
                     + ("" if sc["valid"] else "   *** FLAGGED: not a valid figure ***"))
        lines.append(f"  {'ms':<22}" + "".join(f"{n:>10}" for n in names))
        pct = sc["percentiles_us"]
        for label, key in (("baseline (no mesh)", "plain"), ("mesh", "mesh"),
                           ("generator floor", "floor")):
            lines.append(f"  {label:<22}" + "".join(f"{_ms(pct[key][n]):>10}" for n in names))
        add = sc["added_us"]
        lines.append(f"  {'added (median)':<22}"
                     + "".join(f"{_ms(add[n]['median']):>10}" for n in names))
        lines.append(f"  {'  spread (sd)':<22}" + "".join(f"{_ms(add[n]['sd']):>10}" for n in names))
        lines.append(f"  {'  uncertainty (+-)':<22}" + "".join(
            f"{_ms(add[n].get('uncertainty', {}).get('us', 0.0)):>10}" for n in names))
        lines.append(f"  {'ratio mesh/baseline':<22}" + "".join(f"{sc['ratio'][n]:>10.2f}"
                                                             for n in names))
        late = sc["lateness_us"]
        px = sc["proxy"]
        lines.append(f"  send lateness: p50 {late['p50']:.0f} us, p99 {late['p99']:.0f} us "
                     f"(max {late['max']:.0f} us); generator CPU {sc['generator_cpu_core']:.2f} core")
        lines.append(f"  sidecars: {px['total_cpu_core_per_1000rps']:.3f} core per 1000 rps "
                     f"(all {len(px['sidecars'])}), RSS {px['total_rss_mb']:.0f} MB "
                     f"(private {px['total_private_mb']:.0f} MB)")
        for pod, c in px["sidecars"].items():
            lines.append(f"    {pod:<28} {c['cpu_core_per_1000rps']:.3f} core/1000 rps, "
                         f"{c['cpu_us_per_request']:.0f} us/request, RSS {c['rss_mb']:.0f} MB")
        for f in sc["flags"][:8]:
            lines.append(f"  flag: {f}")
        for f in sc.get("notes", [])[:4]:
            lines.append(f"  noisy: {f}")
        lines.append("  p99.9 and max: reported, never gated (VM stalls dominate them)")
        lines.append("")
    return "\n".join(lines)
