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

import time
from collections.abc import Callable
from typing import Any

from meshproof.load import hist
from meshproof.load.group import GeneratorGroup
from meshproof.load.settings import (MAX_ERROR_FRACTION, MAX_RATE_SHORTFALL, LoadSettings,
                                     ScenarioSettings)
from meshproof.load.topology import CLIENT, MESH_NS, PLAIN_NS
from meshproof.targets.model import ResourceUsage

Log = Callable[[str], None]
#: realtime? -> (what was done, undo): the target's ``prioritize`` for the measured pods
Priority = Callable[[bool], tuple[str, Callable[[], None]]]
#: The pods run real time only while the offered load stays well under a core's worth.
MAX_RT_POD_RATE = 2000.0
#: pod key -> a sampler of its sidecar's CPU and memory (the target's ``sidecar_usage``)
Samplers = dict[str, Callable[[], ResourceUsage | None]]

#: scenario -> workloads of the meshed namespace whose sidecars it crosses
SIDECARS = {"single-hop": ("client", "reviews-v1"),
            "productpage": ("client", "productpage", "details", "reviews-v1")}
#: scenario -> (host, path): the one table of what each scenario calls; every order
#: carries it, so a generator needs no table of its own (loadtests/podgen.py has none)
URLS = {"single-hop": ("http://reviews", "/reviews/0"),
        "productpage": ("http://productpage", "/productpage")}
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

    def __init__(self, plain: GeneratorGroup, mesh: GeneratorGroup, settings: LoadSettings,
                 log: Log = print, sidecars: Callable[[str], Samplers] | None = None,
                 priority: Priority | None = None) -> None:
        self.plain = plain
        self.mesh = mesh
        self.settings = settings
        self.log = log
        self.sidecars = sidecars or (lambda _scenario: {})
        #: Gives the measured pods the CPU first while a scenario runs (the target's
        #: ``prioritize``); returns what it did and how to undo it.
        self.priority = priority

    def _order(self, sc: ScenarioSettings, duration: float, warmup: float,
               **extra: Any) -> dict[str, Any]:
        s = self.settings
        host, path = URLS[sc.name]
        return {"scenario": sc.name, "rate": sc.rate, "duration_s": duration,
                "warmup_s": warmup, "connections": s.connections, "payload": s.payload,
                "timeout_s": s.timeout_s, "spin_us": s.spin_us, "host": host, "path": path,
                "rt_priority": 2 if s.realtime else 1, **extra}

    def _phase(self, gen: GeneratorGroup, order: dict[str, Any], pids: Samplers
               ) -> dict[str, Any]:
        before = {k: f() for k, f in pids.items()}
        t0 = time.monotonic()
        result = gen.run(order)
        wall = time.monotonic() - t0
        after = {k: f() for k, f in pids.items()}
        cpu = {}
        for k in pids:
            b, a = before[k], after[k]
            if a and b:
                cpu[k] = {"cpu_s": round(a.cpu_s - b.cpu_s, 3), "rss_mb": round(a.rss_kb / 1024, 1),
                          "private_mb": round(a.private_kb / 1024, 1), "wall_s": round(wall, 2)}
        return summarize_phase(result, float(order["rate"]), cpu)

    def run(self, sc: ScenarioSettings) -> dict[str, Any]:
        undo = None
        if self.priority is not None:
            how, undo = self.priority(self.settings.realtime and sc.rate <= MAX_RT_POD_RATE)
            if how:
                self.log(f"{sc.name}: {how}")
        try:
            return self._rounds(sc)
        finally:
            if undo is not None:
                undo()

    def _rounds(self, sc: ScenarioSettings) -> dict[str, Any]:
        s = self.settings
        pids = self.sidecars(sc.name)
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
                "generators": {"plain": self.plain.labels, "mesh": self.mesh.labels},
                "paths": {"plain": f"{PLAIN_NS}/{CLIENT} -> {_url(sc.name)}",
                          "mesh": f"{MESH_NS}/{CLIENT} -> {_url(sc.name)} (2 sidecars, mTLS)"
                          if sc.name == "single-hop" else
                          f"{MESH_NS}/{CLIENT} -> {_url(sc.name)} (sidecars: "
                          f"{len(SIDECARS[sc.name])}, mTLS)",
                          "floor": f"{PLAIN_NS}/{CLIENT} -> {FLOOR['host']}{FLOOR['path']}"}}


def _url(scenario: str) -> str:
    return "".join(URLS[scenario])

