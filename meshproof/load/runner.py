"""Running a scenario: baseline and meshed paths interleaved over rounds, plus the floor.

Why interleaved in one lab: on this VM a direct p50 drifted 67 -> 111 us in
ten minutes, so only runs close in time compare. Each round runs both paths
back to back, in ABBA order (plain, mesh | mesh, plain | ...) so a steady
drift adds the same to both on average; the overhead is taken per round
(mesh - plain) and summarised across rounds, whose spread is the noise the
release gate allows for. Every phase discards its own warm-up (new
connections, TLS handshakes after idle).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from meshproof.load import hist, procstat
from meshproof.load.genclient import Generator
from meshproof.load.settings import (MAX_ERROR_FRACTION, MAX_RATE_SHORTFALL, LoadSettings,
                                     ScenarioSettings)
from meshproof.load.topology import CLIENT_POD, MESH_NS, PLAIN_NS
from meshproof.targets.local.netns import pod_netns

Log = Callable[[str], None]

#: scenario -> pods (workload prefix) of the meshed namespace whose sidecars it crosses
SIDECARS = {"single-hop": ("client-0", "reviews-v1-0"),
            "productpage": ("client-0", "productpage-0", "details-0", "reviews-v1-0")}
FLOOR = {"host": "http://127.0.0.1:9080", "path": "/healthz"}


def phase_flags(result: dict[str, Any], rate: float) -> list[str]:
    """Why a phase's figures are not valid ([] when they are): the rate was not kept, or
    requests failed. Late sends do not invalidate a phase: they are timed from their
    intended send time, and their possible bias is part of the figure's uncertainty
    (``meshproof.load.analysis``)."""
    flags = []
    if result["achieved_rps"] < rate * (1 - MAX_RATE_SHORTFALL):
        flags.append(f"achieved {result['achieved_rps']:.1f} rps < target {rate:g} - 1%")
    done = result["measured"] or 1
    nerr = sum(result["errors"].values()) + result["unfinished"]
    if nerr / done > MAX_ERROR_FRACTION:
        flags.append(f"{nerr} errors of {done} ({', '.join(list(result['errors'])[:2])})")
    return flags


def summarize_phase(result: dict[str, Any], rate: float, cpu: dict[str, Any]) -> dict[str, Any]:
    """A phase as stored in the report (schema: docs/load.md)."""
    lat = hist.decode(result["latency_hdr"])
    late = hist.percentiles(hist.decode(result["lateness_hdr"]))
    disp = hist.percentiles(hist.decode(result["dispatch_hdr"]))
    return {"target_rps": rate, "achieved_rps": round(result["achieved_rps"], 2),
            "ok": result["ok"], "errors": result["errors"], "unfinished": result["unfinished"],
            "warmup_requests": result["warmup_requests"],
            "latency_us": hist.percentiles(lat),
            "lateness_us": {k: late[k] for k in ("p50", "p90", "p99", "max")},
            "dispatch_us": {k: disp[k] for k in ("p50", "p99", "max")},
            "generator_cpu_s": round(result["generator_cpu_s"], 3),
            "cpu": cpu, "flags": phase_flags(result, rate),
            "sched": result.get("sched", {}),
            "latency_hdr": result["latency_hdr"]}


class ScenarioRun:
    """One scenario over its rounds, against the two generators of the load lab."""

    def __init__(self, plain: Generator, mesh: Generator, settings: LoadSettings,
                 log: Log = print) -> None:
        self.plain = plain
        self.mesh = mesh
        self.settings = settings
        self.log = log

    def _order(self, sc: ScenarioSettings, duration: float, warmup: float,
               **extra: Any) -> dict[str, Any]:
        s = self.settings
        return {"scenario": sc.name, "rate": sc.rate, "duration_s": duration,
                "warmup_s": warmup, "connections": s.connections, "payload": s.payload,
                "timeout_s": s.timeout_s, "spin_us": s.spin_us,
                "rt_priority": 2 if s.realtime else 1, **extra}

    def _sidecars(self, sc: ScenarioSettings) -> dict[str, int]:
        out = {}
        for pod in SIDECARS[sc.name]:
            pid = procstat.envoy_pid(pod_netns(MESH_NS, pod))
            if pid is not None:
                out[f"{MESH_NS}/{pod}"] = pid
        return out

    def _phase(self, gen: Generator, order: dict[str, Any], pids: dict[str, int]
               ) -> dict[str, Any]:
        before = {k: procstat.sample(p) for k, p in pids.items()}
        t0 = time.monotonic()
        result = gen.run(order)
        wall = time.monotonic() - t0
        after = {k: procstat.sample(p) for k, p in pids.items()}
        cpu = {}
        for k in pids:
            b, a = before[k], after[k]
            if a and b:
                cpu[k] = {"cpu_s": round(a.cpu_s - b.cpu_s, 3), "rss_mb": round(a.rss_kb / 1024, 1),
                          "private_mb": round(a.private_kb / 1024, 1), "wall_s": round(wall, 2)}
        return summarize_phase(result, float(order["rate"]), cpu)

    def run(self, sc: ScenarioSettings) -> dict[str, Any]:
        s = self.settings
        pids = self._sidecars(sc)
        pods = lab_pids() if os.geteuid() == 0 and (s.nice or s.realtime) else []
        if pods:
            how = prioritize(pods, s.nice, s.realtime and sc.rate <= MAX_RT_POD_RATE)
            self.log(f"{sc.name}: the load lab's {how}")
        try:
            return self._rounds(sc, pids)
        finally:
            if pods:
                unprioritize(pods)

    def _rounds(self, sc: ScenarioSettings, pids: dict[str, int]) -> dict[str, Any]:
        s = self.settings
        self.log(f"{sc.name}: {sc.rounds} rounds x ({sc.duration_s:g} s plain + "
                 f"{sc.duration_s:g} s mesh) at {sc.rate:g} rps; sidecars {sorted(pids)}")
        # A discarded warm-up on both paths (pools, TLS sessions, page cache).
        for gen in (self.plain, self.mesh):
            gen.run(self._order(sc, 1.0, 0.5))
        rounds = []
        for r in range(sc.rounds):
            order = ("plain", "mesh") if r % 2 == 0 else ("mesh", "plain")
            phases: dict[str, Any] = {}
            for path in order:
                gen = self.plain if path == "plain" else self.mesh
                phases[path] = self._phase(gen, self._order(sc, sc.duration_s, s.warmup_s),
                                           pids if path == "mesh" else {})
            if s.floor_s:
                phases["floor"] = self._phase(
                    self.plain, self._order(sc, s.floor_s, min(s.warmup_s, 1.0), **FLOOR), {})
            rounds.append({"round": r, "order": list(order), "phases": phases})
            p, m = phases["plain"]["latency_us"], phases["mesh"]["latency_us"]
            self.log(f"  round {r + 1}/{sc.rounds}: p50 {p['p50']:.0f} -> {m['p50']:.0f} us, "
                     f"p99 {p['p99']:.0f} -> {m['p99']:.0f} us"
                     + ("  FLAGGED" if any(ph["flags"] for ph in phases.values()) else ""))
        return {"rate_rps": sc.rate, "duration_s": sc.duration_s, "warmup_s": s.warmup_s,
                "rounds": rounds,
                "paths": {"plain": f"{PLAIN_NS}/{CLIENT_POD} -> {_url(sc.name)}",
                          "mesh": f"{MESH_NS}/{CLIENT_POD} -> {_url(sc.name)} (2 sidecars, mTLS)"
                          if sc.name == "single-hop" else
                          f"{MESH_NS}/{CLIENT_POD} -> {_url(sc.name)} (sidecars: "
                          f"{len(SIDECARS[sc.name])}, mTLS)",
                          "floor": f"{PLAIN_NS}/{CLIENT_POD} -> {FLOOR['host']}{FLOOR['path']}"}}


def _url(scenario: str) -> str:
    return {"single-hop": "http://reviews/reviews/0",
            "productpage": "http://productpage/productpage"}[scenario]


def lab_pids() -> list[int]:
    """Every process in the load lab's pods (both namespaces: the paths compared)."""
    from meshproof.targets.local import netns

    prefix = pod_netns("load", "")
    return [pid for ns in netns.list_ours() if ns.startswith(prefix)
            for pid in netns.pids_in(ns)]


#: Real time for the pods only while the offered load stays well under a core's worth.
MAX_RT_POD_RATE = 2000.0


def _threads(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            out += [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
    return out


def prioritize(pids: list[int], nice: int, realtime: bool) -> str:
    """Give every thread of these processes (Linux scheduling is per thread: Envoy's
    worker must get it too) SCHED_FIFO priority 1 (``realtime``) or the given nice;
    returns what was done, for the log and the report.

    Why: beside two CPU burners and other labs (load average 20+ on 2 cores), the
    sidecars' fair share fell below what 1000 rps need and the queue that grew was
    the machine's, not the mesh's (measured: achieved 300-900 rps, seconds of
    latency, at nice 0 and still at nice -10). Real time is bounded by the offered
    load (the pods only answer requests: ~0.5 core at 1000 rps), by
    ``MAX_RT_POD_RATE`` and by the kernel's RT throttling; the generator runs one
    real-time priority above them, so its sends stay on time. Both paths' pods get
    the same class, so it cancels in the difference."""
    tids = _threads(pids)
    done = 0
    for tid in tids:
        try:
            if realtime:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(1))
            else:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            done += 1
        except OSError:
            pass
    return f"{done} pod threads at " + ("SCHED_FIFO 1" if realtime else f"nice {nice}")


def unprioritize(pids: list[int]) -> None:
    """Back to SCHED_OTHER, nice 0."""
    for tid in _threads(pids):
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, 0)
        except OSError:
            pass


def pin(cpu: int, pids: list[int]) -> None:
    """Pin processes to one CPU: cross-vCPU wake-ups cost ~26 us each on this VM."""
    for pid in pids:
        try:
            os.sched_setaffinity(pid, {cpu})
        except OSError:
            pass
