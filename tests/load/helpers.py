"""Synthetic reports and a stalling local server for the load tests."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from meshproof.load import analysis, hist


def phase(lat_us: dict[str, float], cpu: dict[str, Any] | None = None,
          late_us: dict[str, float] | None = None) -> dict[str, Any]:
    h = hist.new()
    return {"target_rps": 1000.0, "achieved_rps": 1000.0, "ok": 10000, "errors": {},
            "unfinished": 0, "warmup_requests": 1000, "latency_us": lat_us,
            "lateness_us": late_us or {"p50": 2.0, "p99": 40.0, "max": 300.0},
            "dispatch_us": {"p50": 30.0, "p99": 80.0, "max": 400.0},
            "generator_cpu_s": 3.0, "cpu": cpu or {}, "flags": [],
            "latency_hdr": h.encode().decode() if h.total_count else ""}


def synthetic(added: dict[str, float], sd_us: float = 10.0, rounds: int = 5,
              late_us: dict[str, float] | None = None) -> dict[str, Any]:
    """A report whose single-hop added latency is ``added`` (+- sd_us across rounds);
    ``late_us``: the generator's send lateness in every phase (default: a quiet one)."""
    base = {"p50": 300.0, "p90": 400.0, "p99": 700.0, "p99.9": 2000.0, "max": 9000.0}
    rs = []
    for r in range(rounds):
        wiggle = sd_us * ((r % 3) - 1)  # -1, 0, +1, ...: median 0
        mesh = {k: base[k] + added.get(k, 0.0) + wiggle for k in base}
        rs.append({"round": r, "order": ["plain", "mesh"],
                   "phases": {"plain": phase(dict(base), late_us=late_us),
                              "mesh": phase(mesh, late_us=late_us),
                              "floor": phase({k: v / 3 for k, v in base.items()})}})
    sc = analysis.summarize({"rate_rps": 1000.0, "duration_s": 10.0, "warmup_s": 2.0,
                             "rounds": rs, "paths": {}})
    return {"schema": "meshproof.load/v1", "valid": sc["valid"],
            "scenarios": {"single-hop": sc}}


def flagged(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out["valid"] = False
    out["scenarios"]["single-hop"]["valid"] = False
    out["scenarios"]["single-hop"]["flags"] = ["round 1 mesh: achieved 900 rps < 1000 - 1%"]
    return out


class StallingServer:
    """A trivial keep-alive HTTP server on loopback whose whole loop stalls once.

    The stall blocks the event loop (like a GC pause or a VM hiccup): every
    connection stops answering, so a closed-loop generator would stop sending
    and record only one slow request per connection.
    """

    def __init__(self, stall_s: float = 0.2) -> None:
        self.stall_s = stall_s
        self.stall_at: float | None = None
        self.stalled_at: float | None = None
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        threading.Thread(target=self._run, daemon=True).start()
        if not self._ready.wait(5):
            raise RuntimeError("stalling server did not start")

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                if self.stall_at is not None and time.monotonic() >= self.stall_at:
                    self.stall_at = None
                    self.stalled_at = time.monotonic()
                    time.sleep(self.stall_s)  # blocks the whole loop: a real stall
                w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = srv.sockets[0].getsockname()[1]
            self._stop = asyncio.Event()
            self._ready.set()
            async with srv:
                await self._stop.wait()

        asyncio.run(main())

    def close(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)


class OkHandler(BaseHTTPRequestHandler):
    """A trivial keep-alive server: 200 "ok" (503 on /fail)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else 40 ms per answer (Nagle + delayed ACK)

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(503 if self.path == "/fail" else 200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a: Any) -> None:
        pass


@contextmanager
def ok_server() -> Iterator[str]:
    """An ``OkHandler`` server on loopback; yields its base URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), OkHandler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
