#!/usr/bin/env python3
"""The open-loop load generator for pods of a stock Python image: standard library only.

Why a second generator: on a cluster the client pods run ``python:3.12-slim``
(or the user's mirror of it) with the app, the probe and this file mounted
from a ConfigMap (DESIGN.md, "Targets"): no pip, no Locust, gevent or
hdrhistogram, often no network to a package index, and restricted
PodSecurity. ``loadtests/generator.py`` (Locust + gevent) stays the local
lab's generator; this one speaks the same order and answers with the same
fields, so ``meshproof.load`` measures and reports both alike.

The measurement rules are the same (docs/load.md):
- open loop: request ``i`` is due at ``t0 + i/rate`` whatever happened
  before; latency runs from that *intended* time to the end of the response,
  so a request waiting for a connection behind a stall counts its whole wait;
- the scheduler sleeps until ``spin_us`` before the due time on a
  ``select()``-based asyncio loop (epoll's waits round up to a millisecond)
  and yields in a loop for the rest; its send lateness is recorded;
- histograms in microseconds with HDR's bucket layout for 3 significant
  digits: each value is rounded down to its HDR bucket (exact below 2048 us,
  then 2^k-wide buckets) and counted. The harness rebuilds the real HDR
  histogram from those counts (``meshproof.load.hist.from_counts``): the
  same histogram as recording the raw values, in a plain JSON encoding, and
  bounded in size whatever the run's length.

Run once per order: ``python3 podgen.py --once`` reads one JSON order line on
stdin and writes one JSON answer line on stdout (the kube target runs it by
exec, one exec per run); ``--info`` describes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import selectors
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

HIGHEST_US = 60_000_000
MAX_REQUESTS = 2_000_000  # a bound on any one run, whatever the order says
ENCODING = "counts-us-hdr3"


def bucket_us(ns: int) -> int:
    """The HDR (1 us .. 60 s, 3 significant digits) bucket's lowest value, in us."""
    us = min(max(ns // 1000, 1), HIGHEST_US)
    shift = max(0, us.bit_length() - 11)  # 2048 sub-buckets: exact below 2048 us
    return (us >> shift) << shift


class Recorder:
    def __init__(self, record_from_ns: int) -> None:
        self.record_from_ns = record_from_ns
        self.latency: Counter[int] = Counter()
        self.lateness: Counter[int] = Counter()
        self.dispatch: Counter[int] = Counter()
        self.ok = 0
        self.warmup = 0
        self.errors: Counter[str] = Counter()
        self.last_done_ns = 0

    def done(self, intended: int, exc: BaseException | None) -> None:
        now = time.perf_counter_ns()
        if intended < self.record_from_ns:
            self.warmup += 1
            return
        self.last_done_ns = max(self.last_done_ns, now)
        if exc is not None:
            self.errors[f"{type(exc).__name__}: {exc}"[:80]] += 1
            return
        self.ok += 1
        self.latency[bucket_us(now - intended)] += 1


class HTTPStatusError(Exception):
    """A 4xx/5xx answer: an error, as the local generator counts it."""


class Conn:
    """One keep-alive HTTP/1.1 connection: one write and one response per request."""

    def __init__(self, host: str, port: int, head: bytes, timeout_s: float) -> None:
        self.host, self.port, self.head, self.timeout_s = host, port, head, timeout_s
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.w is not None:
            self.w.close()
        self.r = self.w = None

    async def _exchange(self) -> None:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(self.host, self.port)
        assert self.r is not None and self.w is not None
        self.w.write(self.head)
        head = (await self.r.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = dict(ln.split(":", 1) for ln in lines[1:] if ":" in ln)
        if "content-length" in fields:
            await self.r.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").strip() == "chunked":
            while True:
                size = int((await self.r.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.r.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.r.read()
            self.close()
        keep = fields.get("connection", "").strip()
        if keep == "close" or (lines[0].startswith("http/1.0") and keep != "keep-alive"):
            self.close()
        if status >= 400:
            raise HTTPStatusError(f"HTTP {status}")

    async def request(self) -> None:
        try:
            await asyncio.wait_for(self._exchange(), self.timeout_s)
        except HTTPStatusError:
            raise
        except BaseException:
            self.close()
            raise


def _check(order: dict[str, Any]) -> tuple[float, float, float, int, int]:
    rate = float(order["rate"])
    duration, warmup = float(order["duration_s"]), float(order.get("warmup_s", 1.0))
    conns = int(order.get("connections", 16))
    total = int(rate * (duration + warmup))
    if not (0 < rate <= 50_000 and 0 < duration <= 600 and 0 <= warmup <= 60
            and 1 <= conns <= 512 and total <= MAX_REQUESTS):
        raise ValueError("rate 0..50000, duration 0..600 s, warm-up 0..60 s, connections "
                         f"1..512, at most {MAX_REQUESTS} requests")
    if not order.get("host") or not order.get("path"):
        raise ValueError("the order must name host and path (this generator has no "
                         "scenario table: the harness's is the one)")
    return rate, duration, warmup, conns, total


async def run(order: dict[str, Any]) -> dict[str, Any]:
    """One open-loop run; the answer has the local generator's fields (docs/load.md)."""
    rate, duration, warmup, nconn, total = _check(order)
    u = urlsplit(str(order["host"]))
    payload = int(order.get("payload", 0))
    method = "POST" if payload else "GET"
    head = (f"{method} {order['path']} HTTP/1.1\r\nhost: {u.netloc}\r\n"
            + (f"content-length: {payload}\r\n" if payload else "") + "\r\n").encode() \
        + b"x" * payload
    timeout_s = float(order.get("timeout_s", 5.0))
    spin_ns = int(float(order.get("spin_us", 150)) * 1000)
    period_ns = 1e9 / rate
    start_at = float(order.get("start_at_unix", 0) or 0)
    ahead = start_at - time.time()
    if ahead > 30:
        raise ValueError(f"start_at_unix is {ahead:.0f} s ahead (at most 30 s): clocks?")
    if ahead > 0:  # several generators of one path start together (meshproof.load.group)
        await asyncio.sleep(ahead)
    t0 = time.perf_counter_ns() + 50_000_000
    rec = Recorder(t0 + int(warmup * 1e9))
    queue: asyncio.Queue[int | None] = asyncio.Queue()

    async def worker(conn: Conn) -> None:
        while (intended := await queue.get()) is not None:
            start = time.perf_counter_ns()
            if intended >= rec.record_from_ns:
                rec.dispatch[bucket_us(start - intended)] += 1
            try:
                await conn.request()
                rec.done(intended, None)
            except Exception as exc:  # every failure is a counted error
                rec.done(intended, exc)
        conn.close()

    conns = [Conn(u.hostname or "127.0.0.1", u.port or 80, head, timeout_s)
             for _ in range(nconn)]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    tasks = [asyncio.ensure_future(worker(c)) for c in conns]
    for i in range(total):
        intended = t0 + int(i * period_ns)
        while (d := intended - time.perf_counter_ns()) > 0:
            await asyncio.sleep((d - spin_ns) / 1e9 if d > spin_ns else 0)
        if intended >= rec.record_from_ns:
            rec.lateness[bucket_us(time.perf_counter_ns() - intended)] += 1
        queue.put_nowait(intended)
    end_sched = time.perf_counter_ns()
    for _ in tasks:
        queue.put_nowait(None)
    _done, pending = await asyncio.wait(tasks, timeout=timeout_s + 2)
    unfinished = total - rec.ok - sum(rec.errors.values()) - rec.warmup
    for t in pending:
        t.cancel()
    for c in conns:
        c.close()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    window_s = max(duration, (max(rec.last_done_ns, end_sched) - rec.record_from_ns) / 1e9)

    def enc(c: Counter[int]) -> dict[str, int]:
        return {str(k): v for k, v in sorted(c.items())}

    return {"scenario": order.get("scenario", ""), "rate": rate, "duration_s": duration,
            "warmup_s": warmup, "connections": nconn, "sent": total, "ok": rec.ok,
            "measured": rec.ok + sum(rec.errors.values()), "warmup_requests": rec.warmup,
            "errors": dict(rec.errors), "unfinished": unfinished,
            "achieved_rps": rec.ok / window_s, "window_s": window_s,
            "generator_cpu_s": (cpu1.ru_utime + cpu1.ru_stime)
            - (cpu0.ru_utime + cpu0.ru_stime),
            "encoding": ENCODING, "latency_counts": enc(rec.latency),
            "lateness_counts": enc(rec.lateness), "dispatch_counts": enc(rec.dispatch)}


def info() -> dict[str, Any]:
    return {"pid": os.getpid(), "python": platform.python_version(), "gevent": "",
            "locust": "", "backend": "select", "loop": "asyncio SelectSelector",
            "uid": os.getuid(),
            "client": "asyncio streams, one keep-alive connection per worker "
                      "(loadtests/podgen.py, stdlib only)",
            "scheduler": "open loop, select() sleep + yield-spin (asyncio)"}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--info"]:
        print(json.dumps({"ok": info()}))
        return 0
    if args != ["--once"]:
        print("usage: podgen.py --once (an order line on stdin) | --info", file=sys.stderr)
        return 2
    line = sys.stdin.readline(1_000_000)
    try:
        order = json.loads(line)
        loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
        try:
            answer: Any = {"ok": loop.run_until_complete(run(order))}
        finally:
            loop.close()
    except Exception as exc:  # every error goes back to the caller, as one JSON line
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0 if "ok" in answer else 1


if __name__ == "__main__":
    sys.exit(main())
