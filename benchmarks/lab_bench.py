#!/usr/bin/env python3
"""Benchmark of the foundation: bring-up, pod creation, the app's rps on one core, memory.

Not a timed test: it measures and reports. Writes reports/bench/lab.json.
Usage (root): .venv/bin/python benchmarks/lab_bench.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import write_report  # benchmarks/report.py (script dir is on sys.path)

from meshproof import paths
from meshproof.targets.local import netns
from meshproof import registry
from meshproof.targets.local.client import LocalTarget, stop_lab
from meshproof.targets.local.lab import Lab


def bring_up(rounds: int) -> dict[str, float]:
    times, pod_ms = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        target = registry.start_target("local", "none")
        times.append(time.perf_counter() - t0)
        target.down()
    # Pod creation alone (netns + veth + routes + hosts), measured in-process.
    lab = Lab()
    try:
        from meshproof.targets.local.cleanup import sweep
        sweep()
        netns.create_fabric()
        for i in range(20):
            t = time.perf_counter()
            netns.create_pod(netns.pod_netns("bench", str(i)), i, "127.0.0.1 localhost\n")
            pod_ms.append((time.perf_counter() - t) * 1000)
    finally:
        lab.down()
    return {"bringup_s_p50": statistics.median(times), "bringup_s_max": max(times),
            "pod_create_ms_p50": statistics.median(pod_ms),
            "pod_create_ms_p90": sorted(pod_ms)[int(0.9 * len(pod_ms))]}


async def _load(port: int, conns: int, seconds: float) -> int:
    done = 0
    stop = time.monotonic() + seconds
    req = b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n"

    async def one() -> None:
        nonlocal done
        r, w = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < stop:
            w.write(req)
            head = await r.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await r.readexactly(length)
            done += 1
        w.close()

    await asyncio.gather(*(one() for _ in range(conns)))
    return done


def app_rps(seconds: float = 5.0) -> dict[str, float]:
    """The app pinned to CPU 0, the load generator pinned to CPU 1, on loopback."""
    port = 19080
    env = {**os.environ, "MESHPROOF_PORT": str(port), "MESHPROOF_ROLE": "echo"}
    app = subprocess.Popen(["taskset", "-c", "0", paths.POD_PYTHON, str(paths.WORKLOAD_PY)],
                           env=env, stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        os.sched_setaffinity(0, {1 % os.cpu_count()})
        n = asyncio.run(_load(port, 8, seconds))
        cpu = sum(map(float, Path(f"/proc/{app.pid}/stat").read_text().split()[13:15])) \
            / os.sysconf("SC_CLK_TCK")
        rss_kb = int(next(ln.split()[1] for ln in Path(f"/proc/{app.pid}/status").read_text()
                          .splitlines() if ln.startswith("VmRSS")))
    finally:
        app.terminate()
        app.wait()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {"app_rps_one_core": n / seconds, "app_cpu_s": cpu, "app_rss_mb": rss_kb / 1024}


def lab_memory() -> dict[str, float]:
    """Sum of RSS of every process of an idle lab (no mesh)."""
    target = registry.start_target("local", "none")
    try:
        from meshproof.targets.local.cleanup import owned_pids
        total = 0
        for pid in owned_pids():
            try:
                total += int(next(ln.split()[1] for ln in Path(f"/proc/{pid}/status")
                                  .read_text().splitlines() if ln.startswith("VmRSS")))
            except (OSError, StopIteration):
                pass
        return {"lab_processes_rss_mb": total / 1024, "pods": len(target.pods())}
    finally:
        target.down()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if LocalTarget.running():
        print("a lab is running: 'meshproof down' first", file=sys.stderr)
        return 2
    out: dict[str, float] = {}
    out |= bring_up(args.rounds)
    out |= app_rps()
    out |= lab_memory()
    out["harness_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stop_lab()
    write_report("lab", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
