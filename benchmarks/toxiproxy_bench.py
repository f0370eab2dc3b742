"""What meshproof's toxiproxy costs: added latency and throughput, with and without latency toxics.

Direct and proxied runs are interleaved round by round in one session (only
such runs compare on a VM whose baseline drifts). The proxy runs in its own
process pinned to one core (``--proxy-cpu``); the echo/sink server runs in
another process. Then, on the same proxy: stream throughput under a 10 ms and
a 100 ms latency toxic (a latency toxic must delay a stream, not throttle it),
and the round trip through two stacked 100 ms latency toxics (Go adds them:
~200 ms). Prints a table and writes reports/bench/toxiproxy.json.

    .venv/bin/python benchmarks/toxiproxy_bench.py [--rounds 8 --requests 1000 --mbytes 256 --latency-mbytes 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from meshproof.toxiproxy.client import ToxiproxyClient, start_server

SERVER = r"""
import socket, sys, threading
def echo(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while d := c.recv(65536):
        c.sendall(d)
def sink(c):
    n = 0
    while d := c.recv(1 << 20):
        n += len(d)
    c.sendall(str(n).encode())
def serve(handle):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=lambda: (handle(c), c.close()), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]
print(serve(echo), serve(sink), flush=True)
sys.stdin.read()
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _pingpong(sock: socket.socket, n: int, size: int = 64) -> list[float]:
    msg = b"p" * size
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        sock.sendall(msg)
        got = 0
        while got < size:
            got += len(sock.recv(size - got))
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def _stream(port: int, total: int) -> float:
    chunk = b"s" * (1 << 16)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        t0 = time.perf_counter()
        for _ in range(total // len(chunk)):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        received = int(s.recv(64))
        elapsed = time.perf_counter() - t0
    assert received == total, (received, total)
    return total / elapsed / 1e6


def _connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _throughput_under_latency(api: ToxiproxyClient, sink_via: int, mbytes: int) -> dict[str, float]:
    """MB/s of one bulk stream through the sink proxy with no toxic, 10 ms and 100 ms upstream latency."""
    total = mbytes * 1_000_000 // (1 << 16) * (1 << 16)
    out = {}
    for ms in (0, 10, 100):
        if ms:
            api.add_toxic("sink", "latency", {"latency": ms}, stream="upstream", name="lat")
        out[str(ms)] = _stream(sink_via, total)
        if ms:
            api.remove_toxic("sink", "lat")
    return out


def _stacked_latency_rtt(api: ToxiproxyClient, echo_via: int) -> float:
    """Median round trip (ms) of 64 B through two 100 ms downstream latency toxics."""
    api.add_toxic("echo", "latency", {"latency": 100}, name="lat1")
    api.add_toxic("echo", "latency", {"latency": 100}, name="lat2")
    with _connect(echo_via) as s:
        rtt_ms = statistics.median(_pingpong(s, 7)) / 1000
    api.remove_toxic("echo", "lat1")
    api.remove_toxic("echo", "lat2")
    return rtt_ms


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--requests", type=int, default=1000, help="ping-pongs per round and path")
    ap.add_argument("--mbytes", type=int, default=256, help="MB streamed per throughput run")
    ap.add_argument("--latency-mbytes", type=int, default=64, help="MB streamed per latency-toxic run")
    ap.add_argument("--proxy-cpu", type=int, default=0)
    ap.add_argument("--out", default="reports/bench/toxiproxy.json")
    args = ap.parse_args()

    srv = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert srv.stdout is not None
    echo_port, sink_port = map(int, srv.stdout.readline().split())
    running = start_server(mode="subprocess")
    try:
        assert running.pid is not None
        os.sched_setaffinity(running.pid, {args.proxy_cpu})
        api = ToxiproxyClient(running.url)
        echo_via = int(api.create_proxy("echo", f"127.0.0.1:{echo_port}")["listen"].rsplit(":", 1)[1])
        sink_via = int(api.create_proxy("sink", f"127.0.0.1:{sink_port}")["listen"].rsplit(":", 1)[1])

        direct_c, proxy_c = _connect(echo_port), _connect(echo_via)
        _pingpong(direct_c, 200), _pingpong(proxy_c, 200)  # warm-up, discarded
        direct: list[float] = []
        proxied: list[float] = []
        per_round = []
        for r in range(args.rounds):
            order = [(direct_c, direct), (proxy_c, proxied)]
            if r % 2:
                order.reverse()
            got = {}
            for sock, acc in order:
                samples = _pingpong(sock, args.requests)
                acc.extend(samples)
                got[sock is proxy_c] = statistics.median(samples)
            per_round.append({"direct_p50_us": got[False], "proxy_p50_us": got[True]})
        direct_c.close(), proxy_c.close()

        total = args.mbytes * 1_000_000 // (1 << 16) * (1 << 16)
        tput_direct, tput_proxy, cpu = [], [], []
        for r in range(3):
            for via in ((False, True) if r % 2 == 0 else (True, False)):
                if via:
                    c0 = _cpu_seconds(running.pid)
                    t0 = time.perf_counter()
                    tput_proxy.append(_stream(sink_via, total))
                    cpu.append((_cpu_seconds(running.pid) - c0) / (time.perf_counter() - t0))
                else:
                    tput_direct.append(_stream(sink_port, total))
        under_latency = _throughput_under_latency(api, sink_via, args.latency_mbytes)
        stacked = _stacked_latency_rtt(api, echo_via)
        api.close()
    finally:
        running.stop()
        srv.terminate()
        srv.wait(5)

    result = {
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "setup": {
            "rounds": args.rounds,
            "requests_per_round": args.requests,
            "message_bytes": 64,
            "proxy": "meshproof built-in, subprocess, pinned to cpu %d" % args.proxy_cpu,
            "stream_bytes": total,
        },
        "latency_us": {
            "direct_p50": statistics.median(direct),
            "direct_p99": _pct(direct, 0.99),
            "proxy_p50": statistics.median(proxied),
            "proxy_p99": _pct(proxied, 0.99),
            "added_p50": statistics.median(proxied) - statistics.median(direct),
            "added_p99": _pct(proxied, 0.99) - _pct(direct, 0.99),
            "added_p50_per_round": [r["proxy_p50_us"] - r["direct_p50_us"] for r in per_round],
        },
        "throughput_MBps": {
            "direct": statistics.median(tput_direct),
            "proxy": statistics.median(tput_proxy),
            "proxy_cpu_cores": statistics.median(cpu),
        },
        "latency_toxic": {
            "throughput_MBps": under_latency,
            "stacked_2x100ms_rtt_ms": stacked,
        },
        "goal": {"added_p50_us_max": 100, "throughput_under_100ms_MBps_min": 100, "stacked_rtt_ms": [180, 220]},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    lat, tp = result["latency_us"], result["throughput_MBps"]
    print(f"{'':24}{'direct':>10}{'proxy':>10}{'added':>10}")
    print(f"{'RTT p50 (us, 64 B)':24}{lat['direct_p50']:>10.1f}{lat['proxy_p50']:>10.1f}{lat['added_p50']:>10.1f}")
    print(f"{'RTT p99 (us, 64 B)':24}{lat['direct_p99']:>10.1f}{lat['proxy_p99']:>10.1f}{lat['added_p99']:>10.1f}")
    print(f"{'throughput (MB/s)':24}{tp['direct']:>10.0f}{tp['proxy']:>10.0f}")
    print(f"proxy CPU while streaming: {tp['proxy_cpu_cores']:.2f} cores (pinned to 1)")
    for ms, mbps in under_latency.items():
        print(f"{'throughput, ' + ms + ' ms toxic':24}{'':>10}{mbps:>10.0f}")
    print(f"{'2 x 100 ms toxics, RTT':24}{'':>10}{stacked:>10.1f} ms")
    verdict = "met" if lat["added_p50"] <= 100 else "NOT met"
    print(f"goal added p50 <= 100 us: {verdict}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
