"""Packet capture between two pods, read back as evidence.

tcpdump runs in the fabric netns on the destination pod's veth, so it sees
the traffic after VIP translation and exactly once. The summary counts TLS
records (walking each TCP flow's bytes) and occurrences of a
plaintext marker in the raw capture: a wire check needs both, so an empty or
misplaced capture cannot pass as "encrypted".
"""

from __future__ import annotations

import signal
import struct
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from meshproof.errors import TargetError
from meshproof.targets.local.netns import FABRIC
from meshproof.targets.model import CaptureSummary


class Capture:
    """A running tcpdump; ``stop()`` returns the summary."""

    def __init__(self, interface: str, peer_ip: str, pcap: Path, log: Path) -> None:
        self.pcap = pcap
        self.log = log
        argv = ["ip", "netns", "exec", FABRIC, "tcpdump", "-i", interface, "-n", "-U", "--immediate-mode",
                "-s", "0", "-w", str(pcap), f"host {peer_ip} and tcp"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=open(log, "wb"), start_new_session=True)
        # tcpdump says "listening on" once the socket is open: wait for it (bounded).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if b"listening on" in log.read_bytes():
                return
            if self.proc.poll() is not None:
                raise TargetError(f"tcpdump exited: {log.read_text(errors='replace')}")
            time.sleep(0.01)
        self.proc.kill()
        raise TargetError("tcpdump did not start within 5 s")

    #: Let the last segments land: the pcap must stop growing for this long (bounded by
    #: SETTLE_MAX_S) before tcpdump is told to stop. A fixed 50 ms lost the last request's
    #: packets when the machine was loaded (load average ~25 on 2 cores: tcpdump waits its
    #: turn for 100 ms and more), and a plaintext control then saw N-1 markers of N.
    SETTLE_S = 0.2
    SETTLE_MAX_S = 2.0

    def _settle(self) -> None:
        deadline = time.monotonic() + self.SETTLE_MAX_S
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_size = self.pcap.stat().st_size if self.pcap.exists() else 0
            if now_size != size:
                size, since = now_size, time.monotonic()
            elif time.monotonic() - since >= self.SETTLE_S:
                return
            time.sleep(0.025)

    def stop(self, marker: str = "", tls_ports: tuple[int, ...] = (9080,)) -> CaptureSummary:
        self._settle()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return summarize(self.pcap, marker, tls_ports)


def _packets(pcap: Path) -> list[bytes]:
    """Frames of a classic pcap file (what tcpdump -w writes)."""
    data = pcap.read_bytes() if pcap.exists() else b""
    if len(data) < 24:
        return []
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        out.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return out


def _tcp_segment(frame: bytes) -> tuple[bytes, bytes]:
    """(flow key, payload) of an Ethernet/IPv4/TCP frame ((b"", b"") for anything else)."""
    if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
        return b"", b""
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != 6:
        return b"", b""
    total = struct.unpack("!H", ip[2:4])[0]
    tcp = ip[ihl:total]
    if len(tcp) < 20:
        return b"", b""
    return ip[12:20] + tcp[0:4], tcp[(tcp[12] >> 4) * 4:]


def _tcp_payload(frame: bytes) -> bytes:
    return _tcp_segment(frame)[1]


def _record_at(stream: bytes, i: int) -> int:
    """Length of a plausible TLS record header + body at ``i``, or 0."""
    if i + 5 > len(stream):
        return 0
    ctype, major, minor = stream[i], stream[i + 1], stream[i + 2]
    length = struct.unpack("!H", stream[i + 3:i + 5])[0]
    if ctype not in (20, 21, 22, 23) or major != 3 or minor > 4 or length > (1 << 14) + 256:
        return 0
    return 5 + length


def tls_records(frames: list[bytes]) -> tuple[int, int]:
    """(records, handshake records) found by walking each TCP flow's byte stream.

    Our own walker, not tshark's dissector: a capture that starts in the
    middle of a pooled connection has no handshake to anchor a dissector, so
    we resynchronise on the first offset where two record headers chain.
    """
    flows: dict[bytes, bytearray] = {}
    for f in frames:
        key, payload = _tcp_segment(f)
        if payload:
            flows.setdefault(key, bytearray()).extend(payload)
    records = handshakes = 0
    for stream in flows.values():
        data = bytes(stream)
        start = next((i for i in range(min(len(data), 1 << 16))
                      if (n := _record_at(data, i)) and (i + n == len(data)
                                                         or _record_at(data, i + n))), None)
        if start is None:
            continue
        i = start
        while (n := _record_at(data, i)) and i + n <= len(data):
            records += 1
            handshakes += data[i] == 22
            i += n
    return records, handshakes


def summarize(pcap: Path, marker: str = "", tls_ports: tuple[int, ...] = (9080,)
              ) -> CaptureSummary:
    frames = _packets(pcap)
    payloads = [_tcp_payload(f) for f in frames]
    needle = marker.encode()
    hits = sum(p.count(needle) for p in payloads) if needle else 0
    records, handshakes = tls_records(frames)
    return CaptureSummary(packets=len(frames), tcp_payload_bytes=sum(map(len, payloads)),
                          tls_records=records, tls_handshakes=handshakes, marker=marker,
                          marker_hits=hits, pcap=str(pcap))
