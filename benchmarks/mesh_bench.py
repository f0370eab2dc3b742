#!/usr/bin/env python3
"""Benchmark of the reference mesh in the netns lab: bring-up, config convergence, memory.

Not a timed test: it measures and reports. Writes reports/bench/mesh.json.
- bring-up of the default topology with sidecars (--mesh reference) and without
  a mesh (--mesh none), median of --rounds runs each, and their ratio;
- convergence with ~50 sidecars (reviews_replicas=13): --flips alternations of a
  reviews TrafficSplit 100/0 <-> 0/100, timed from apply() to wait_programmed()
  returning (every sidecar ACKed, nothing warming);
- memory of that lab: control plane and CA RSS, mean agent RSS, and per Envoy
  its private memory (Private_Clean + Private_Dirty from smaps_rollup) and RSS.
Usage (root): .venv/bin/python benchmarks/mesh_bench.py [--rounds 2] [--flips 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from report import write_report  # benchmarks/report.py (script dir is on sys.path)

from meshproof.intent import TrafficSplit
from meshproof.mesh.reference import ReferenceMesh
from meshproof.target.local.cleanup import owned_pids
from meshproof.target.local.client import LocalTarget, stop_lab


def bring_up(mesh: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        LocalTarget.start(mesh=mesh)
        times.append(time.perf_counter() - t0)
        stop_lab()
    return times


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def convergence(target: LocalTarget, flips: int) -> tuple[ReferenceMesh, dict[str, float]]:
    mesh = ReferenceMesh(target.pods())
    splits = [TrafficSplit("bookinfo/reviews", (("reviews-v1", 100), ("reviews-v2", 0))),
              TrafficSplit("bookinfo/reviews", (("reviews-v1", 0), ("reviews-v2", 100)))]
    # Warm-up: the first policy builds the routes; not counted.
    mesh.wait_programmed(mesh.apply(splits[1]), timeout=60)
    ms = []
    for i in range(flips):
        t0 = time.perf_counter()
        version = mesh.apply(splits[i % 2])
        mesh.wait_programmed(version, timeout=60)
        ms.append((time.perf_counter() - t0) * 1000)
    return mesh, {"sidecars": len(mesh.sidecars), "flips": len(ms),
                  "converge_ms_p50": statistics.median(ms),
                  "converge_ms_p99": percentile(ms, 99),
                  "converge_ms_max": max(ms)}


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") \
            .rstrip("\0").split("\0")
    except OSError:
        return []


def _kb(path: str, field: str) -> int:
    for ln in Path(path).read_text().splitlines():
        if ln.startswith(field + ":"):
            return int(ln.split()[1])
    raise KeyError(f"{field} not in {path}")


def memory() -> dict[str, float]:
    pids = owned_pids()
    cp, ca, agents, envoys = [], [], [], []
    for pid in pids:
        argv = _argv(pid)
        if not argv:
            continue
        if "refmesh.controlplane" in argv:
            cp.append(pid)
        elif "refmesh.ca" in argv:
            ca.append(pid)
        elif "refmesh.agent" in argv:
            agents.append(pid)
        elif "envoy" in Path(argv[0]).name and "--disable-hot-restart" in argv:
            envoys.append(pid)
    if not cp:  # not marked as ours: look at every process
        cp = [int(d.name) for d in Path("/proc").iterdir()
              if d.name.isdigit() and any("refmesh.controlplane" in a for a in _argv(int(d.name)))]
    if len(cp) != 1 or len(ca) != 1:
        raise RuntimeError(f"expected one control plane and one CA, found cp={cp} ca={ca}")
    priv, env_rss, agent_rss = [], [], []
    for pid in envoys:
        roll = f"/proc/{pid}/smaps_rollup"
        priv.append(_kb(roll, "Private_Clean") + _kb(roll, "Private_Dirty"))
        env_rss.append(_kb(f"/proc/{pid}/status", "VmRSS"))
    for pid in agents:
        agent_rss.append(_kb(f"/proc/{pid}/status", "VmRSS"))
    return {"controlplane_rss_mb": _kb(f"/proc/{cp[0]}/status", "VmRSS") / 1024,
            "ca_rss_mb": _kb(f"/proc/{ca[0]}/status", "VmRSS") / 1024,
            "agents": len(agent_rss),
            "agent_rss_mb_mean": statistics.mean(agent_rss) / 1024,
            "envoys": len(priv),
            "envoy_private_mb_mean": statistics.mean(priv) / 1024,
            "envoy_private_mb_max": max(priv) / 1024,
            "envoy_rss_mb_mean": statistics.mean(env_rss) / 1024}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--flips", type=int, default=40)
    ap.add_argument("--reviews-replicas", type=int, default=13)
    args = ap.parse_args()
    if LocalTarget.running():
        print("a lab is running: 'meshproof down' first", file=sys.stderr)
        return 2
    out: dict[str, float] = {}
    try:
        ref = bring_up("reference", args.rounds)
        none = bring_up("none", args.rounds)
        out["bringup_reference_s_p50"] = statistics.median(ref)
        out["bringup_reference_s_max"] = max(ref)
        out["bringup_none_s_p50"] = statistics.median(none)
        out["bringup_none_s_max"] = max(none)
        out["bringup_ratio_reference_over_none"] = \
            out["bringup_reference_s_p50"] / out["bringup_none_s_p50"]
        t0 = time.perf_counter()
        target = LocalTarget.start(mesh="reference", reviews_replicas=args.reviews_replicas)
        out["bringup_50_sidecars_s"] = time.perf_counter() - t0
        out["pods"] = len(target.pods())
        mesh, conv = convergence(target, args.flips)
        out |= conv
        out |= memory()
        mesh.reset()
    finally:
        stop_lab()
    out["cpus"] = os.cpu_count() or 0
    write_report("mesh", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
