#!/usr/bin/env python3
"""An independent HTTP client for the load cross-check: a raw socket loop, no gevent,
no Locust, no HDR library: ``--connections`` keep-alive connections used in turn (as
the generator spreads its requests over its 16), one request at a time, paced.

Prints one JSON line: {"us": [latency of each request in microseconds], "errors": n}.
Latency runs from just before ``sendall`` to the last byte of the answer
(``perf_counter_ns``). Closed loop on purpose (a different method from the
generator's open loop): at latencies well under the pacing period the two
measure the same thing.

Usage: python rawclient.py --host reviews --port 80 --path /reviews/0 --count 5000
       [--rate 1000] [--warmup 500] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def read_answer(sock: socket.socket, buf: bytearray) -> None:
    """Read one HTTP/1.1 answer with Content-Length (the sample app always sets it)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    buf[:] = rest[length:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--path", default="/")
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--connections", type=int, default=16)
    a = ap.parse_args()
    if not (0 < a.count <= 200_000 and 0 < a.rate <= 20_000 and 1 <= a.connections <= 64):
        print("count 1..200000, rate 0..20000, connections 1..64", file=sys.stderr)
        return 2
    req = f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\n\r\n".encode()

    def connect() -> socket.socket:
        s = socket.create_connection((a.host, a.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    socks = [connect() for _ in range(a.connections)]
    bufs = [bytearray() for _ in socks]
    period = int(1e9 / a.rate)
    out: list[int] = []
    errors = 0
    nxt = time.perf_counter_ns()
    for i in range(a.warmup + a.count):
        while (d := nxt - time.perf_counter_ns()) > 0:
            if d > 200_000:
                time.sleep((d - 150_000) / 1e9)
        nxt += period
        k = i % len(socks)
        t0 = time.perf_counter_ns()
        try:
            socks[k].sendall(req)
            read_answer(socks[k], bufs[k])
        except OSError:
            errors += 1
            socks[k].close()
            socks[k] = connect()
            bufs[k].clear()
            continue
        if i >= a.warmup:
            out.append((time.perf_counter_ns() - t0) // 1000)
    for s in socks:
        s.close()
    print(json.dumps({"us": out, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
