#!/usr/bin/env python3
"""The open-loop load generator: Locust users, a precise scheduler, HDR histograms.

Runs as its own process (inside a client pod, or locally for tests) so
gevent's monkey-patching never touches the harness. Orders arrive over a
Unix socket as JSON lines; each ``run`` answers with encoded HDR histograms.

Why not Locust's runner: it is closed loop (a user waits for its response
before its next request, so a stall hides the requests that should have been
sent during it) and it buckets response times to 1 ms. Here a scheduler fires
request ``i`` at ``t0 + i/rate`` whatever happened before, hands it to the
first free user (connection), and latency runs from that intended time to
completion: a request queued behind a stall is counted with its full wait.

Why the select backend and the short spin: libev's epoll backend rounds every
wait up to a whole millisecond (measured here: send lateness p99 1.1 ms at
1000 rps); select() takes microseconds (p99 ~190 us, too close to the 0.2 ms
budget), and sleeping until ``spin_us`` before the tick, then yielding in a
loop, brings p99 to tens of microseconds for ~10% of a core.

Why a real-time class on a shared machine (:func:`realtime`): with other
processes busy on both cores, a CFS wake-up waits for the running task's
slice (measured: send lateness p99 0.2-2 ms beside two CPU burners), so as
root the generator runs each run as SCHED_FIFO (priority ``rt_priority``,
1 or 2: the lowest real-time priorities, one above the load lab's pods when
they run real time too; it preempts ordinary tasks, never the kernel's own
threads), with timer slack 1 ns (PR_SET_TIMERSLACK: a CFS task's sleeps are
otherwise stretched by 50 us) and the garbage collector off during the run
(a collection pauses every greenlet). The duty cycle stays bounded: the
busy part per request is the ``spin_us`` yield-spin plus one send and one
read, the order is refused real time when ``rate x spin_us`` would exceed
:data:`MAX_RT_DUTY` of a core, and the kernel's RT throttling
(``sched_rt_runtime_us``, 95% by default) caps it whatever happens. The
class is dropped back to SCHED_OTHER at the end of every run.
"""

from __future__ import annotations

import os

os.environ.setdefault("GEVENT_BACKEND", "select")  # before gevent creates its loop

import argparse  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import locust  # noqa: E402,F401  (monkey-patches first)
import gevent  # noqa: E402
import gevent.queue  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402
from locust.env import Environment  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenarios import OpenLoopUser, user_class  # noqa: E402

LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3
MAX_REQUESTS = 2_000_000  # a bound on any one run, whatever the order says
#: Real time only while the spin alone stays under this fraction of a core.
MAX_RT_DUTY = 0.5
PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30


def _prctl(option: int, value: int = 0) -> int:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0))
    except (OSError, AttributeError):
        return -1


@contextlib.contextmanager
def realtime(order: dict[str, Any]) -> Any:
    """SCHED_FIFO (root only, bounded duty), 1 ns timer slack, no GC, optional CPU pin, for
    one run; yields what was really applied (the report says so)."""
    applied: dict[str, Any] = {"policy": "SCHED_OTHER", "timer_slack_ns": None, "gc": "on",
                               "cpu": None}
    want_rt = bool(order.get("realtime", True))
    duty = float(order["rate"]) * float(order.get("spin_us", 150)) / 1e6
    old_slack = _prctl(PR_GET_TIMERSLACK)
    old_aff = os.sched_getaffinity(0)
    rt = False
    try:
        if order.get("cpu") is not None:
            os.sched_setaffinity(0, {int(order["cpu"])})
            applied["cpu"] = int(order["cpu"])
        if _prctl(PR_SET_TIMERSLACK, 1) == 0:
            applied["timer_slack_ns"] = 1
        if want_rt and os.geteuid() == 0 and duty <= MAX_RT_DUTY:
            try:
                prio = int(order.get("rt_priority", 1))
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))
                rt = True
                applied["policy"] = f"SCHED_FIFO {prio}"
            except OSError as exc:
                applied["policy"] = f"SCHED_OTHER (SCHED_FIFO refused: {exc.strerror})"
        elif want_rt:
            applied["policy"] = ("SCHED_OTHER (not root)" if os.geteuid() else
                                 f"SCHED_OTHER (spin duty {duty:.2f} > {MAX_RT_DUTY})")
        gc.collect()
        gc.freeze()
        gc.disable()
        applied["gc"] = "off during the run"
        yield applied
    finally:
        gc.enable()
        gc.unfreeze()
        if rt:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        if old_slack > 0:
            _prctl(PR_SET_TIMERSLACK, old_slack)
        os.sched_setaffinity(0, old_aff)


def new_hist() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record(h: HdrHistogram, ns: int) -> None:
    h.record_value(min(max(ns // 1000, LOWEST_US), HIGHEST_US))


def encode(h: HdrHistogram) -> str:
    return h.encode().decode() if h.total_count else ""


class Recorder:
    """Counts and times every request of one run from Locust's request event."""

    def __init__(self, record_from_ns: int) -> None:
        self.record_from_ns = record_from_ns
        self.latency = new_hist()
        self.lateness = new_hist()
        self.dispatch = new_hist()
        self.ok = 0
        self.warmup = 0
        self.errors: Counter[str] = Counter()
        self.last_done_ns = 0

    def on_request(self, exception: BaseException | None = None,
                   context: dict[str, Any] | None = None, **_kw: Any) -> None:
        now = time.perf_counter_ns()
        intended = int((context or {}).get("intended_ns", 0))
        if intended < self.record_from_ns:
            self.warmup += 1
            return
        self.last_done_ns = max(self.last_done_ns, now)
        if exception is not None:
            self.errors[_error_kind(exception)] += 1
            return
        self.ok += 1
        record(self.latency, now - intended)


def _error_kind(exc: BaseException) -> str:
    """A short, stable key: the exception type and the start of its message."""
    return f"{type(exc).__name__}: {exc}"[:80]


def wait_until(t_ns: int, spin_ns: int) -> None:
    """Return at ``t_ns`` or just after: sleep most of the way, yield-spin the rest."""
    while True:
        d = t_ns - time.perf_counter_ns()
        if d <= 0:
            return
        gevent.sleep((d - spin_ns) / 1e9 if d > spin_ns else 0)


def run(order: dict[str, Any]) -> dict[str, Any]:
    """One open-loop run; see docs/load.md for the order and answer fields."""
    with realtime(order) as sched:
        return {**_run(order), "sched": sched}


def _run(order: dict[str, Any]) -> dict[str, Any]:
    rate = float(order["rate"])
    duration, warmup = float(order["duration_s"]), float(order.get("warmup_s", 1.0))
    conns = int(order.get("connections", 16))
    timeout_s = float(order.get("timeout_s", 5.0))
    spin_ns = int(float(order.get("spin_us", 150)) * 1000)
    total = int(rate * (duration + warmup))
    if not (0 < rate <= 50_000 and 0 < duration <= 600 and 1 <= conns <= 512
            and total <= MAX_REQUESTS):
        raise ValueError("rate 0..50000, duration 0..600 s, connections 1..512, "
                         f"at most {MAX_REQUESTS} requests")
    cls = user_class(order["scenario"], host=order.get("host", ""), path=order.get("path", ""),
                     payload=int(order.get("payload", 0)), timeout_s=timeout_s,
                     fasthttp=bool(order.get("fasthttp", False)))
    env = Environment(user_classes=[cls])
    period_ns = 1e9 / rate
    t0 = time.perf_counter_ns() + 50_000_000
    rec = Recorder(t0 + int(warmup * 1e9))
    env.events.request.add_listener(rec.on_request)
    users = [cls(env) for _ in range(conns)]
    queue: gevent.queue.Queue[int | None] = gevent.queue.Queue()

    def worker(user: OpenLoopUser) -> None:
        task = user.tasks[0]
        while (intended := queue.get()) is not None:
            start = time.perf_counter_ns()
            if intended >= rec.record_from_ns:
                record(rec.dispatch, start - intended)
            user.intended_ns = intended
            try:
                task(user)
            except Exception as exc:  # the event normally reports it; never lose a worker
                rec.on_request(exception=exc, context={"intended_ns": intended})

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    workers = [gevent.spawn(worker, u) for u in users]
    for i in range(total):
        intended = t0 + int(i * period_ns)
        wait_until(intended, spin_ns)
        if intended >= rec.record_from_ns:
            record(rec.lateness, time.perf_counter_ns() - intended)
        queue.put(intended)
    end_sched = time.perf_counter_ns()
    for _ in workers:
        queue.put(None)
    gevent.joinall(workers, timeout=timeout_s + 2)
    unfinished = sum(1 for w in workers if not w.dead)
    gevent.killall([w for w in workers if not w.dead], block=True, timeout=2)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for u in users:
        u.close()
    measured = rec.ok + sum(rec.errors.values())
    window_s = max(duration, (max(rec.last_done_ns, end_sched) - rec.record_from_ns) / 1e9)
    return {"scenario": order["scenario"], "rate": rate, "duration_s": duration,
            "warmup_s": warmup, "connections": conns, "sent": total, "ok": rec.ok,
            "measured": measured, "warmup_requests": rec.warmup,
            "errors": dict(rec.errors), "unfinished": unfinished,
            "achieved_rps": rec.ok / window_s, "window_s": window_s,
            "generator_cpu_s": (cpu1.ru_utime + cpu1.ru_stime)
            - (cpu0.ru_utime + cpu0.ru_stime),
            "latency_hdr": encode(rec.latency), "lateness_hdr": encode(rec.lateness),
            "dispatch_hdr": encode(rec.dispatch)}


def info() -> dict[str, Any]:
    return {"pid": os.getpid(), "gevent": gevent.__version__, "locust": locust.__version__,
            "loop": type(gevent.get_hub().loop).__module__,
            "backend": os.environ.get("GEVENT_BACKEND", ""), "uid": os.getuid()}


def serve(path: Path) -> None:
    path.unlink(missing_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    os.chmod(path, 0o600)
    srv.listen(4)
    while True:
        conn, _ = srv.accept()
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    req = json.loads(line)
                    cmd = req.get("cmd")
                    if cmd == "quit":
                        f.write(b'{"ok": "bye"}\n')
                        f.flush()
                        return
                    answer: Any = run(req["order"]) if cmd == "run" else info()
                    out = {"ok": answer}
                except Exception as exc:  # every error goes back to the caller
                    out = {"error": f"{type(exc).__name__}: {exc}"}
                f.write(json.dumps(out).encode() + b"\n")
                f.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="loadtests/generator.py")
    ap.add_argument("--socket", required=True, type=Path)
    args = ap.parse_args(argv)
    serve(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
