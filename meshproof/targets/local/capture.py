"""Packet capture between two pods, read back as evidence.

tcpdump runs in the fabric netns on the destination pod's veth, so it sees
the traffic after VIP translation and exactly once. The summary counts TLS
records (walking each TCP flow's bytes) and occurrences of a
plaintext marker in the raw capture: a wire check needs both, so an empty or
misplaced capture cannot pass as "encrypted".

A capture ends only once it holds everything that crossed the link before the
stop: the fabric sends one UDP datagram with a fresh token down the same link,
and tcpdump is stopped after it wrote that datagram. A packet socket delivers
frames in the order the link passed them, so every earlier frame is in the file.
(Waiting for the file to stop growing was not enough: a CPU-starved tcpdump left
frames in its ring buffer past any quiet period, and a plaintext control saw 5
of 6 markers beside two CPU burners.)

The ring buffer is sized for a starved tcpdump: libpcap's default 2 MiB holds about
32 frames of 64 KiB (the frame size on links with segmentation offload), and a
tcpdump that waited its turn for the CPU lost everything past them: 32 packets, 3
of 10 plaintext requests, in a capture beside two burners. tcpdump's own count of
frames the kernel dropped is read at the end; a capture with drops is an error, not
evidence.
"""

from __future__ import annotations

import re
import secrets
import signal
import socket
import struct
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from meshproof.errors import TargetError
from meshproof.netns_socket import socket_in_netns
from meshproof.targets.local.netns import FABRIC, GATEWAY
from meshproof.targets.model import CaptureSummary


#: The end datagram's port (discard): nothing listens there, the pod's kernel drops it.
END_PORT = 9
#: The capture's ring buffer (KiB, tcpdump -B): 512 frames of 64 KiB, several times
#: the largest capture a check takes (about 110 frames).
BUFFER_KIB = 32768


class Capture:
    """A running tcpdump; ``stop()`` returns the summary."""

    def __init__(self, interface: str, peer_ip: str, dst_ip: str, pcap: Path, log: Path
                 ) -> None:
        self.pcap = pcap
        self.log = log
        self.dst_ip = dst_ip
        self.token = b"meshproof-capture-end-" + secrets.token_hex(8).encode()
        bpf = (f"(host {peer_ip} and tcp) or (udp and src host {GATEWAY} and dst host {dst_ip}"
               f" and dst port {END_PORT})")
        argv = ["ip", "netns", "exec", FABRIC, "tcpdump", "-i", interface, "-n", "-U", "--immediate-mode",
                "-B", str(BUFFER_KIB), "-s", "0", "-w", str(pcap), bpf]
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

    #: How long tcpdump may take to write the end datagram (s), and how often it is sent
    #: (a datagram on a local veth is not lost, but a full ring buffer drops frames).
    FLUSH_MAX_S = 10.0
    FLUSH_SENDS = 3

    def _flush(self) -> None:
        """Send the end datagram from the fabric down the captured link; return once
        tcpdump wrote it (bounded), so the file holds every frame that came before."""
        sock = socket_in_netns(f"/run/netns/{FABRIC}", socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for _ in range(self.FLUSH_SENDS):
                sock.sendto(self.token, (self.dst_ip, END_PORT))
                deadline = time.monotonic() + self.FLUSH_MAX_S / self.FLUSH_SENDS
                while time.monotonic() < deadline:
                    if self.pcap.exists() and self.token in self.pcap.read_bytes():
                        return
                    if self.proc.poll() is not None:
                        break
                    time.sleep(0.01)
        finally:
            sock.close()
        self.proc.kill()
        raise TargetError(
            f"capture incomplete: tcpdump did not write its end datagram within "
            f"{self.FLUSH_MAX_S:.0f} s ({self.log.read_text(errors='replace').strip()})",
            "the machine is too loaded for a packet capture; run with fewer other jobs")

    def stop(self, marker: str = "", tls_ports: tuple[int, ...] = (9080,)) -> CaptureSummary:
        self._flush()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        dropped = kernel_drops(self.log.read_text(errors="replace"))
        if dropped:
            raise TargetError(
                f"capture incomplete: the kernel dropped {dropped} frames tcpdump could not "
                f"read in time ({self.pcap})",
                "the machine is too loaded for a packet capture; run with fewer other jobs")
        return summarize(self.pcap, marker, tls_ports)


def kernel_drops(log: str) -> int:
    """tcpdump's closing "N packets dropped by kernel" (0 when it printed none)."""
    m = re.search(r"^(\d+) packets? dropped by kernel", log, re.M)
    return int(m.group(1)) if m else 0


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


def _is_tcp(frame: bytes) -> bool:
    return len(frame) >= 14 + 20 and frame[12:14] == b"\x08\x00" and frame[14 + 9] == 6


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
    frames = [f for f in _packets(pcap) if _is_tcp(f)]  # not the end datagram
    payloads = [_tcp_payload(f) for f in frames]
    needle = marker.encode()
    hits = sum(p.count(needle) for p in payloads) if needle else 0
    records, handshakes = tls_records(frames)
    return CaptureSummary(packets=len(frames), tcp_payload_bytes=sum(map(len, payloads)),
                          tls_records=records, tls_handshakes=handshakes, marker=marker,
                          marker_hits=hits, pcap=str(pcap))
