"""The same requests timed on the wire: an instrument independent of the generator.

tcpdump runs in the client pod's network namespace and timestamps, in the
kernel, every segment between the generator and the first hop (the service
VIP for the baseline, the client sidecar's outbound listener for the mesh).
A request's *wire latency* runs from its first request segment to the last
response segment before the next request on that keep-alive connection. It
excludes the generator's own costs (send lateness, dispatch, parsing), which
are the same on both paths, so the added latency (mesh - baseline) from the
wire and from the generator must agree: ``tests/load/test_lab.py`` checks it
with an Envoy fault delay in the meshed path, whose true size on this VM is
not what was configured (docs/load.md, "What an Envoy fault delay adds").

Phases are recovered from the connections: a generator run opens its own
keep-alive connections and closes them when it ends, so connections that
open while another group is still open belong to the same run.
"""

from __future__ import annotations

import signal
import statistics
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: libpcap hands over a partly filled block after its 1 s timeout
FLUSH_S = 1.5
#: pcap link types: Ethernet (-i lo / eth0), Linux cooked v1 and v2 (-i any)
_LINK_HEADER = {1: 14, 113: 16, 276: 20}


@dataclass
class Conn:
    """One TCP connection from the generator: its requests' wire timings (ns)."""

    key: tuple[bytes, int]  # the generator's end: address, port
    opened_ns: int
    closed_ns: int | None = None
    requests: list[tuple[int, int]] = field(default_factory=list)  # (sent, last answer seg)
    _req_ns: int | None = None
    _resp_ns: int | None = None

    def _client_data(self, t: int) -> None:
        if self._req_ns is None or self._resp_ns is not None:  # a new request
            self._flush()
            self._req_ns, self._resp_ns = t, None

    def _server_data(self, t: int) -> None:
        if self._req_ns is not None:
            self._resp_ns = t

    def _flush(self) -> None:
        if self._req_ns is not None and self._resp_ns is not None:
            self.requests.append((self._req_ns, self._resp_ns))
        self._req_ns = self._resp_ns = None


def read_pcap(path: Path, server_ports: frozenset[int]) -> list[Conn]:
    """Connections to any of ``server_ports`` (TCP, IPv4) with their request timings.

    Connections are keyed by the generator's end only: a connection the mesh
    redirects (iptables REDIRECT to the sidecar's port 15001) shows its
    requests to 127.0.0.1:15001 and its answers from the service VIP's port.
    """
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    frac_ns = 1 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1000
    link = struct.unpack(end + "I", data[20:24])[0]
    if link not in _LINK_HEADER:
        raise ValueError(f"{path}: link type {link} not supported")
    hdr = _LINK_HEADER[link]
    conns: dict[tuple[bytes, int], Conn] = {}
    done: list[Conn] = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        t = sec * 1_000_000_000 + frac * frac_ns
        ip = pkt[hdr:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:]
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack("!HH", tcp[:4])
        flags = tcp[13]
        payload = total - ihl - (tcp[12] >> 4) * 4
        src, dst = ip[12:16], ip[16:20]
        if dport in server_ports:
            key, from_client = (src, sport), True
        elif sport in server_ports:
            key, from_client = (dst, dport), False
        else:
            continue
        c = conns.get(key)
        if flags & 0x02 and from_client and not flags & 0x10:  # SYN: a new connection
            if c is not None:
                c._flush()
                done.append(c)
            c = conns[key] = Conn(key, t)
        if c is None:
            continue  # began before the capture
        if payload > 0:
            (c._client_data if from_client else c._server_data)(t)
        if flags & 0x05 and c.closed_ns is None:  # FIN or RST: the run is over
            c._flush()
            c.closed_ns = t
    for c in conns.values():
        c._flush()
    return sorted(done + list(conns.values()), key=lambda c: c.opened_ns)


def phases(conns: list[Conn]) -> list[list[tuple[int, int]]]:
    """Requests per generator run, in time order (see the module doc)."""
    groups: list[list[Conn]] = []
    for c in conns:
        if groups and c.opened_ns < min(x.closed_ns or 2**63 for x in groups[-1]):
            groups[-1].append(c)
        else:
            groups.append([c])
    return [sorted(r for c in g for r in c.requests) for g in groups]


def measured_us(requests: list[tuple[int, int]], warmup: int) -> list[float]:
    """Wire latencies (us) of a run without its first ``warmup`` requests."""
    return [(b - a) / 1000 for a, b in requests[warmup:]]


def p50(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def round_p50s(pcap: Path, server_ports: frozenset[int], warmup: int
               ) -> tuple[list[float], list[int]]:
    """Wire p50 (us) of each run in a capture after the first, and every run's size.

    The first run is the runner's discarded warm-up run (runner.ScenarioRun);
    each later run is one round's phase of this path, in round order.
    """
    runs = phases(read_pcap(pcap, server_ports))
    return [p50(measured_us(r, warmup)) for r in runs[1:]], [len(r) for r in runs]


class Capture:
    """tcpdump in a pod's netns, writing a pcap until ``stop()``."""

    def __init__(self, netns_name: str, interface: str, bpf: str, pcap: Path) -> None:
        self.pcap = pcap
        self.log = pcap.with_suffix(".log")
        # Block mode (no --immediate-mode): fewer wake-ups competing with the
        # measured processes; stop() waits out libpcap's 1 s block timeout.
        argv = ["ip", "netns", "exec", netns_name, "tcpdump", "-i", interface, "-n", "-Z", "root",
                "-s", "128", "-B", "8192", "--time-stamp-precision=nano", "-w", str(pcap), bpf]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + 5
        while b"listening on" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tcpdump did not start: {self.log.read_text()}")
            time.sleep(0.02)

    def stop(self) -> dict[str, Any]:
        """Stop tcpdump; its own drop counts (a dropped segment would lose a request)."""
        if self.proc.poll() is None:
            time.sleep(FLUSH_S)  # a partly filled capture block is lost at SIGINT
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        text = self.log.read_text(errors="replace")
        dropped = [int(line.split()[0]) for line in text.splitlines()
                   if "dropped by" in line and line.split()[0].isdigit()]
        return {"dropped": sum(dropped), "log": text.strip()}
