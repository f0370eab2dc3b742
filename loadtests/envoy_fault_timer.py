#!/usr/bin/env python3
"""What an Envoy fault delay really adds on this machine (docs/load.md).

Starts a bare Envoy (concurrency 1) on loopback whose only route answers
itself (direct_response) behind an HTTPFault with a 100 % fixed delay, and
times ``--count`` sequential requests on one keep-alive connection, for each
delay, with libevent's default clock and with ``EVENT_PRECISE_TIMER=1``
(libevent then times with CLOCK_MONOTONIC instead of CLOCK_MONOTONIC_COARSE).
No lab, no mesh: ``.venv/bin/python loadtests/envoy_fault_timer.py``.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference-mesh"))


def coarse_resolution_ms() -> float:
    """clock_getres(CLOCK_MONOTONIC_COARSE): the tick libevent's default clock moves by."""

    class Timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    ts = Timespec()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.clock_getres(6, ctypes.byref(ts)) != 0:  # 6: CLOCK_MONOTONIC_COARSE (Linux)
        return float("nan")
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(port: int, admin: int, delay_ms: int) -> dict:
    fault = {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
             "delay": {"fixed_delay": f"{max(delay_ms, 1) / 1000:.3f}s",
                       "percentage": {"numerator": 100 if delay_ms else 0,
                                      "denominator": "HUNDRED"}}}
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network."
                    "http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "t",
           "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
               {"match": {"prefix": "/"},
                "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]},
           "http_filters": [
               {"name": "envoy.filters.http.fault", "typed_config": fault},
               {"name": "envoy.filters.http.router", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {"static_resources": {"listeners": [{
                "name": "l", "address": {"socket_address": {"address": "127.0.0.1",
                                                            "port_value": port}},
                "filter_chains": [{"filters": [
                    {"name": "envoy.filters.network.http_connection_manager",
                     "typed_config": hcm}]}]}]},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1",
                                                     "port_value": admin}}}}


def measure(envoy: str, delay_ms: int, precise: bool, count: int) -> dict:
    port, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "envoy.json"
        cfg.write_text(json.dumps(config(port, admin, delay_ms)))
        env = dict(os.environ)
        env.pop("EVENT_PRECISE_TIMER", None)
        if precise:
            env["EVENT_PRECISE_TIMER"] = "1"
        proc = subprocess.Popen([envoy, "-c", str(cfg), "--concurrency", "1", "-l", "error",
                                 "--disable-hot-restart"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("envoy did not listen")
                    time.sleep(0.05)
            c = http.client.HTTPConnection("127.0.0.1", port)
            lat = []
            for i in range(count + 50):  # the first 50: warm-up
                t = time.perf_counter_ns()
                c.request("GET", "/")
                c.getresponse().read()
                if i >= 50:
                    lat.append((time.perf_counter_ns() - t) / 1e6)
            c.close()
            stats = http.client.HTTPConnection("127.0.0.1", admin)
            stats.request("GET", "/stats?filter=fault.delays_injected")
            injected = stats.getresponse().read().decode().strip()
        finally:
            proc.terminate()
            proc.wait(10)
    lat.sort()
    bins = collections.Counter(round(x * 2) / 2 for x in lat)
    return {"delay_ms": delay_ms, "precise": precise,
            "p10": lat[len(lat) // 10], "p50": statistics.median(lat),
            "p90": lat[len(lat) * 9 // 10], "mean": statistics.fmean(lat),
            "bins_0.5ms": {f"{k:g}": v for k, v in sorted(bins.items()) if v >= count // 100},
            "delays_injected": injected}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--delays", default="0,2,3,4,5,10", help="fault delays, ms (0: none)")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from refmesh.envoy_binary import find_envoy

    envoy = str(find_envoy())
    print(f"CLOCK_MONOTONIC_COARSE resolution: {coarse_resolution_ms():g} ms; envoy {envoy}")
    rows = [measure(envoy, int(d), precise, args.count)
            for d in args.delays.split(",") for precise in (False, True)]
    base = {r["precise"]: r["p50"] for r in rows if r["delay_ms"] == 0}
    for r in rows:
        if args.json:
            print(json.dumps(r))
            continue
        clock = "EVENT_PRECISE_TIMER=1" if r["precise"] else "default (coarse)"
        print(f"delay {r['delay_ms']:>2} ms  {clock:<22} p50 {r['p50']:6.2f} ms "
              f"(added {r['p50'] - base.get(r['precise'], 0):+6.2f})  p10 {r['p10']:6.2f}  "
              f"p90 {r['p90']:6.2f}  mean {r['mean']:6.2f}  0.5 ms bins {r['bins_0.5ms']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
