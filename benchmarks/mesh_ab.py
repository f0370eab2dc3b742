#!/usr/bin/env python3
"""The reference mesh, old code vs new, side by side in one run: bring-up, convergence,
control-plane CPU per push, memory, at one or more lab sizes.

Why side by side: this 2-core machine is shared with other labs and drifts
by 2x within minutes; only figures measured in the same run, interleaved,
compare (FIELD-NOTES). Each round runs every tree once, the order
alternating between rounds; a tree runs in its own process with its own
venv and ``MESHPROOF_INSTANCE`` (its own lab), one lab at a time.

Per tree and lab size (``--sizes``: reviews replicas; sidecars = 3 x R + 10):
- ``bringup_none_s`` / ``bringup_reference_s``: the default topology with no
  mesh and with the reference mesh (``--sizes`` does not apply), their ratio;
- ``bringup_s``: the lab of that size with the reference mesh;
- convergence: ``--flips`` alternations of a reviews TrafficSplit, timed
  from ``apply()`` to ``wait_programmed()`` returning (p50, p99, max);
- ``cp_cpu_ms_per_push`` and ``envoys_cpu_ms_per_push`` (utime+stime of the
  control plane / of all Envoys over the flips, per flip);
- memory: control plane, CA, identity agents (sum: every agent process),
  Envoy private memory per sidecar.

Usage (root)::

    .venv/bin/python benchmarks/mesh_ab.py --before /work/wt/perf-base \\
        [--rounds 2] [--flips 40] [--sizes 13] [--no-default]
    .venv/bin/python benchmarks/mesh_ab.py --sizes 13,30,63   # this tree only (scale)

Writes reports/bench/mesh_ab.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
TREE = HERE.parents[1]


# ----------------------------------------------------------------- child: one tree


def _pids() -> dict[str, list[int]]:
    from meshproof.load.procstat import argv
    from meshproof.targets.local.cleanup import owned_pids

    out: dict[str, list[int]] = {"cp": [], "ca": [], "agents": [], "envoys": []}
    for pid in owned_pids():
        a = argv(pid)
        if not a:
            continue
        joined = " ".join(a)
        if "refmesh.controlplane" in joined:
            out["cp"].append(pid)
        elif "refmesh.ca" in joined:
            out["ca"].append(pid)
        elif "refmesh.agent" in joined or "refmesh.nodeagent" in joined:
            out["agents"].append(pid)
        elif "envoy" in Path(a[0]).name and "--disable-hot-restart" in a:
            out["envoys"].append(pid)
    return out


def _pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (the interpreter, gRPC's library) divided among
    the processes that map them, so agents sharing them with the control plane count
    their share only."""
    try:
        for ln in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if ln.startswith("Pss:"):
                return int(ln.split()[1])
    except OSError:
        pass
    return 0


def _cpu(pids: list[int]) -> float:
    from meshproof.load.procstat import sample

    return sum(s.cpu_s for s in map(sample, pids) if s)


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def child(flips: int, sizes: list[int], default: bool) -> dict[str, Any]:
    from meshproof import registry
    from meshproof.intent import TrafficSplit
    from meshproof.load.procstat import sample
    from meshproof.mesh.reference import ReferenceMesh
    from meshproof.targets.local.client import stop_lab

    out: dict[str, Any] = {}
    try:
        if default:
            for mesh in ("none", "reference"):
                t0 = time.perf_counter()
                registry.start_target("local", mesh)
                out[f"bringup_{mesh}_s"] = time.perf_counter() - t0
                stop_lab()
            out["bringup_ratio"] = out["bringup_reference_s"] / out["bringup_none_s"]
        for r in sizes:
            t0 = time.perf_counter()
            target = registry.start_target("local", "reference", reviews_replicas=r)
            fig: dict[str, float] = {"bringup_s": time.perf_counter() - t0}
            mesh = ReferenceMesh(target)
            fig["sidecars"] = len(mesh.sidecars)
            splits = [TrafficSplit("bookinfo/reviews", (("reviews-v1", 100), ("reviews-v2", 0))),
                      TrafficSplit("bookinfo/reviews", (("reviews-v1", 0), ("reviews-v2", 100)))]
            mesh.wait_programmed(mesh.apply(splits[1]), timeout=120)  # warm-up, not counted
            pids = _pids()
            cp0, env0 = _cpu(pids["cp"]), _cpu(pids["envoys"])
            ms = []
            for i in range(flips):
                t1 = time.perf_counter()
                mesh.wait_programmed(mesh.apply(splits[i % 2]), timeout=120)
                ms.append((time.perf_counter() - t1) * 1000)
            fig["cp_cpu_ms_per_push"] = (_cpu(pids["cp"]) - cp0) * 1000 / flips
            fig["envoys_cpu_ms_per_push"] = (_cpu(pids["envoys"]) - env0) * 1000 / flips
            fig |= {"converge_ms_p50": statistics.median(ms), "converge_ms_p99": _pct(ms, 99),
                    "converge_ms_max": max(ms)}
            mem = {k: [s for s in map(sample, v) if s] for k, v in pids.items()}
            fig |= {"cp_rss_mb": sum(s.rss_kb for s in mem["cp"]) / 1024,
                    "ca_rss_mb": sum(s.rss_kb for s in mem["ca"]) / 1024,
                    "agent_processes": len(mem["agents"]),
                    "agents_rss_mb_total": sum(s.rss_kb for s in mem["agents"]) / 1024,
                    "agents_pss_mb_total": sum(_pss_kb(p) for p in pids["agents"]) / 1024,
                    "envoy_private_mb_mean": statistics.mean(s.private_kb for s in mem["envoys"])
                    / 1024}
            mesh.reset()
            stop_lab()
            out[f"size_{r}"] = fig
    finally:
        stop_lab()
    return out


# ----------------------------------------------------------------- driver


def run_tree(tree: Path, instance: str, args: argparse.Namespace) -> dict[str, Any]:
    py = tree / ".venv" / "bin" / "python"
    cmd = [str(py), str(HERE), "--child", "--flips", str(args.flips),
           "--sizes", args.sizes] + (["--no-default"] if args.no_default else [])
    env = {**os.environ, "MESHPROOF_INSTANCE": instance}
    env.pop("PYTHONPATH", None)
    for attempt in (1, 2):  # one retry, said in the output: a lab can lose a race under load
        cp = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,
                            timeout=3600)
        if cp.returncode == 0:
            return dict(json.loads(cp.stdout.strip().splitlines()[-1]), attempts=attempt)
        print(f"{tree}: attempt {attempt} failed (exit {cp.returncode}):\n"
              f"{cp.stderr[-2500:]}", file=sys.stderr, flush=True)
    raise SystemExit(f"{tree}: exit {cp.returncode}\n{cp.stderr[-3000:]}")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flatten(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = float(v)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--before", type=Path, default=None,
                    help="a worktree of the old code with its own .venv (make setup)")
    ap.add_argument("--before-instance", default="pb")
    ap.add_argument("--instance", default=os.environ.get("MESHPROOF_INSTANCE", "pf"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--flips", type=int, default=40)
    ap.add_argument("--sizes", default="13", help="reviews replicas per lab, comma-separated")
    ap.add_argument("--no-default", action="store_true",
                    help="skip the default-topology bring-up (none vs reference)")
    args = ap.parse_args()
    if args.child:
        res = child(args.flips, [int(x) for x in args.sizes.split(",") if x],
                    not args.no_default)
        print(json.dumps(res))
        return 0
    trees = [("after", TREE, args.instance)]
    if args.before:
        trees.insert(0, ("before", args.before.resolve(), args.before_instance))
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in trees}
    for r in range(args.rounds):
        for name, tree, inst in (trees if r % 2 == 0 else trees[::-1]):
            print(f"round {r + 1}: {name} ({tree})", file=sys.stderr, flush=True)
            runs[name].append(_flatten(run_tree(tree, inst, args)))
    med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]}
           for name, rs in runs.items()}
    report: dict[str, Any] = {"note": "2-core VM shared with other labs: compare within this "
                              "run only (medians of interleaved rounds)",
                              "rounds": args.rounds, "flips": args.flips, "median": med,
                              "runs": runs}
    if "before" in med:
        report["ratio_after_over_before"] = {
            k: med["after"][k] / med["before"][k] for k in med["after"]
            if k in med["before"] and med["before"][k]}
    dest = TREE / "reports" / "bench"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "mesh_ab.json").write_text(json.dumps(report, indent=1))
    keys = sorted({k for m in med.values() for k in m})
    names = list(med)
    print(f"{'figure':<42}" + "".join(f"{n:>12}" for n in names)
          + ("       ratio" if "before" in med else ""))
    for k in keys:
        row = "".join(f"{med[n].get(k, float('nan')):12.2f}" for n in names)
        ratio = report.get("ratio_after_over_before", {}).get(k)
        print(f"{k:<42}{row}" + (f"{ratio:12.3f}" if ratio is not None else ""))
    print(f"written: {dest / 'mesh_ab.json'} (noisy shared machine: ratios, same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
