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
from meshproof.load.procstat import argv, sample
from meshproof import registry
from meshproof.mesh.reference import ReferenceMesh
from meshproof.targets.local.cleanup import owned_pids
from meshproof.targets.local.client import LocalTarget, stop_lab


def bring_up(mesh: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        registry.start_target("local", mesh)
        times.append(time.perf_counter() - t0)
        stop_lab()
    return times


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def convergence(target: LocalTarget, flips: int) -> tuple[ReferenceMesh, dict[str, float]]:
    mesh = ReferenceMesh(target)
    splits = [TrafficSplit("bookinfo/reviews", (("reviews-v1", 100), ("reviews-v2", 0))),
              TrafficSplit("bookinfo/reviews", (("reviews-v1", 0), ("reviews-v2", 100)))]
    # Warm-up: the first policy builds the routes; not counted.
    mesh.wait_programmed(mesh.apply(splits[1]), timeout=60)
    ms = []
    for i in range(flips):
        t0 = time.perf_counter()
        token = mesh.apply(splits[i % 2])
        mesh.wait_programmed(token, timeout=60)
        ms.append((time.perf_counter() - t0) * 1000)
    return mesh, {"sidecars": len(mesh.sidecars), "flips": len(ms),
                  "converge_ms_p50": statistics.median(ms),
                  "converge_ms_p99": percentile(ms, 99),
                  "converge_ms_max": max(ms)}


def memory() -> dict[str, float]:
    cp, ca, agents, envoys = [], [], [], []
    for pid in owned_pids():
        a = argv(pid)
        if not a:
            continue
        if "refmesh.controlplane" in a:
            cp.append(pid)
        elif "refmesh.ca" in a:
            ca.append(pid)
        elif "refmesh.agent" in a:
            agents.append(pid)
        elif "envoy" in Path(a[0]).name and "--disable-hot-restart" in a:
            envoys.append(pid)
    if len(cp) != 1 or len(ca) != 1:
        raise RuntimeError(f"expected one control plane and one CA, found cp={cp} ca={ca}")
    env = [s for s in map(sample, envoys) if s]
    agent = [s for s in map(sample, agents) if s]
    cps, cas = sample(cp[0]), sample(ca[0])
    assert cps and cas, "control plane or CA exited during the benchmark"
    return {"controlplane_rss_mb": cps.rss_kb / 1024,
            "ca_rss_mb": cas.rss_kb / 1024,
            "agents": len(agent),
            "agent_rss_mb_mean": statistics.mean(s.rss_kb for s in agent) / 1024,
            "envoys": len(env),
            "envoy_private_mb_mean": statistics.mean(s.private_kb for s in env) / 1024,
            "envoy_private_mb_max": max(s.private_kb for s in env) / 1024,
            "envoy_rss_mb_mean": statistics.mean(s.rss_kb for s in env) / 1024}


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
        target = registry.start_target("local", "reference",
                                       reviews_replicas=args.reviews_replicas)
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
