"""The wire instrument (meshproof.load.wire) on a synthetic capture: no lab, no tcpdump."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from meshproof.load import wire

SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
GEN, VIP, LO, POD = "198.18.1.6", "198.19.0.15", "127.0.0.1", "198.18.1.9"


def packet(t_us: float, src: str, sport: int, dst: str, dport: int, flags: int,
           payload: int = 0) -> tuple[int, bytes]:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + payload, 0, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return int(t_us * 1000), b"\0" * 20 + ip + tcp + b"x" * payload  # Linux cooked v2


def write_pcap(path: Path, pkts: list[tuple[int, bytes]]) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 276)]  # ns, SLL2
    for t, p in sorted(pkts, key=lambda x: x[0]):
        out.append(struct.pack("<IIII", t // 10**9, t % 10**9, len(p), len(p)) + p)
    path.write_bytes(b"".join(out))
    return path


def redirected(t: float, port: int, flags: int, payload: int = 0, answer: bool = False
               ) -> tuple[int, bytes]:
    """The mesh's view: requests to the sidecar on lo, answers from the service VIP."""
    if answer:
        return packet(t, VIP, 80, GEN, port, flags, payload)
    return packet(t, GEN, port, LO, 15001, flags, payload)


@pytest.fixture()
def capture(tmp_path: Path) -> Path:
    a, b, c = 40000, 40002, 40004
    pkts = [
        # run 1: two connections, open together, closed at the end
        redirected(0, a, SYN), redirected(10, a, SYN | ACK, answer=True),
        redirected(500, b, SYN), redirected(510, b, SYN | ACK, answer=True),
        redirected(1000, a, ACK | PSH, 42),                   # request 1 (a)
        redirected(1010, a, ACK, answer=True),                # bare ACK: not an answer
        redirected(2000, b, ACK | PSH, 42),                   # request 2 (b)
        redirected(2900, b, ACK | PSH, 300, answer=True),     # its answer: 900 us
        redirected(3000, a, ACK | PSH, 200, answer=True),     # answer to 1, two segments
        redirected(3500, a, ACK | PSH, 100, answer=True),     # ... ends at 2500 us
        packet(3600, GEN, 50160, POD, 9080, ACK | PSH, 500),  # the sidecar's upstream: ignored
        redirected(10000, a, ACK | PSH, 42),                  # request 3 (a)
        redirected(12000, a, ACK | PSH, 300, answer=True),    # 2000 us
        redirected(20000, a, FIN | ACK), redirected(20500, b, FIN | ACK),
        # run 2: a fresh connection after run 1 closed; ends with a reset
        redirected(30000, c, SYN), redirected(30010, c, SYN | ACK, answer=True),
        redirected(31000, c, ACK | PSH, 42), redirected(31700, c, ACK | PSH, 300, answer=True),
        redirected(40000, c, RST | ACK),
    ]
    return write_pcap(tmp_path / "c.pcap", pkts)


def test_requests_are_timed_from_request_to_last_answer_segment(capture: Path) -> None:
    conns = wire.read_pcap(capture, frozenset({80, 15001}))
    assert [len(c.requests) for c in conns] == [2, 1, 1]
    runs = wire.phases(conns)
    assert [[(b - a) // 1000 for a, b in r] for r in runs] == [[2500, 900, 2000], [700]]
    # warm-up: the first requests sent in a run are dropped, in send order
    assert wire.measured_us(runs[0], 1) == [900.0, 2000.0]


def test_round_p50s_skip_the_warm_up_run(capture: Path) -> None:
    p50s, sizes = wire.round_p50s(capture, frozenset({80, 15001}), 0)
    assert sizes == [3, 1] and p50s == [700.0]


def test_only_the_given_ports_count(capture: Path) -> None:
    # the sidecar's upstream segment (no SYN in the capture) and other ports: nothing
    assert wire.read_pcap(capture, frozenset({9080})) == []
    only_80 = wire.read_pcap(capture, frozenset({80}))  # answers, but no requests
    assert only_80 == [] or all(not c.requests for c in only_80)
