"""Each toxic acting on real TCP traffic on loopback, with stated tolerances."""

from __future__ import annotations

import math
import os
import socket
import statistics
import threading
import time
from typing import Callable, Iterator

import pytest
from toxtcp import CountingSink, TcpServer, port_of, recv_all

from meshproof.toxiproxy.client import ToxiproxyClient


@pytest.fixture
def proxied(client: ToxiproxyClient) -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """Start a TCP server with ``handle`` and a proxy in front of it; returns the proxy port."""
    servers: list[TcpServer] = []

    def make(handle: Callable[[socket.socket], None]) -> int:
        srv = TcpServer(handle)
        servers.append(srv)
        return port_of(client.create_proxy("p", srv.addr)["listen"])

    yield make
    for srv in servers:
        srv.close()


def _echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(65536):
        conn.sendall(data)


def _connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _rtts(port: int, n: int) -> list[float]:
    with _connect(port) as s:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(b"x")
            assert s.recv(1) == b"x"
            out.append(time.perf_counter() - t0)
        return out


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_100ms_p50(client: ToxiproxyClient, proxied, stream: str) -> None:  # type: ignore[no-untyped-def]
    port = proxied(_echo)
    client.add_toxic("p", "latency", {"latency": 100, "jitter": 0}, stream=stream)
    p50 = statistics.median(_rtts(port, 9))
    assert 0.090 <= p50 <= 0.110, f"p50 {p50 * 1000:.1f} ms, want 100 +/- 10 ms"


def test_latency_jitter_spreads(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    port = proxied(_echo)
    client.add_toxic("p", "latency", {"latency": 60, "jitter": 30})
    rtts = _rtts(port, 20)
    # Each delay is uniform in [30, 90] ms; 15 ms slack for scheduling on a busy box.
    assert min(rtts) >= 0.029 and max(rtts) <= 0.105, rtts
    # 20 draws all within a 10 ms window has probability < 20 * (1/6)**19: never.
    assert max(rtts) - min(rtts) >= 0.010, rtts


def test_latency_applies_to_live_connection_and_removal_restores(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    port = proxied(_echo)
    with _connect(port) as s:
        s.sendall(b"a")
        assert s.recv(1) == b"a"
        client.add_toxic("p", "latency", {"latency": 80}, name="lat")
        t0 = time.perf_counter()
        s.sendall(b"b")
        assert s.recv(1) == b"b"
        assert time.perf_counter() - t0 >= 0.075
        client.update_toxic("p", "lat", {"latency": 0})
        client.remove_toxic("p", "lat")
        t0 = time.perf_counter()
        s.sendall(b"c")
        assert s.recv(1) == b"c"
        assert time.perf_counter() - t0 < 0.05


def test_bandwidth_within_10_percent(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    payload = b"z" * 300_000

    def source(conn: socket.socket) -> None:
        conn.sendall(payload)

    port = proxied(source)
    client.add_toxic("p", "bandwidth", {"rate": 500})  # 500 KB/s, KB = 1000 bytes as upstream
    with _connect(port, timeout=10) as s:
        t0 = time.perf_counter()
        data = recv_all(s)
        elapsed = time.perf_counter() - t0
    assert data == payload
    rate = len(data) / elapsed
    assert 450_000 <= rate <= 550_000, f"{rate:.0f} B/s, want 500000 +/- 10%"


def test_reset_peer_resets(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    port = proxied(_echo)
    client.add_toxic("p", "reset_peer", {"timeout": 0})
    with _connect(port) as s:
        s.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            for _ in range(10):  # the RST may follow an empty read on some kernels
                if s.recv(10) == b"":
                    s.sendall(b"again")
                    time.sleep(0.05)


def test_reset_peer_after_timeout(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    port = proxied(_echo)
    client.add_toxic("p", "reset_peer", {"timeout": 200}, stream="upstream")
    with _connect(port) as s:
        t0 = time.perf_counter()
        s.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            s.recv(10)
        assert time.perf_counter() - t0 >= 0.19


def test_limit_data_closes_after_n_bytes(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    def source(conn: socket.socket) -> None:
        conn.sendall(bytes(range(256)) * 4)
        conn.recv(1)

    port = proxied(source)
    client.add_toxic("p", "limit_data", {"bytes": 100})
    with _connect(port) as s:
        assert recv_all(s) == (bytes(range(256)) * 4)[:100]


def test_slicer_slices(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(range(200))

    def source(conn: socket.socket) -> None:
        conn.sendall(payload)

    port = proxied(source)
    client.add_toxic("p", "slicer", {"average_size": 10, "size_variation": 4, "delay": 5000})
    sizes = []
    got = b""
    with _connect(port) as s:
        while part := s.recv(65536):
            sizes.append(len(part))
            got += part
    assert got == payload
    # Slices are 6..14 bytes, 5 ms apart; a late reader may merge two, so judge the median.
    assert len(sizes) >= 10 and statistics.median(sizes) <= 14, sizes


def test_timeout_stops_data_then_closes(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    port = proxied(_echo)
    client.add_toxic("p", "timeout", {"timeout": 300})
    with _connect(port) as s:
        t0 = time.perf_counter()
        s.sendall(b"hello")
        assert s.recv(10) == b""  # nothing got through, then the close
        elapsed = time.perf_counter() - t0
    assert 0.28 <= elapsed <= 0.8, elapsed


def test_timeout_zero_holds_until_removed(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    port = proxied(_echo)
    client.add_toxic("p", "timeout", {"timeout": 0}, name="t")
    with _connect(port, timeout=0.3) as s:
        s.sendall(b"hello")
        with pytest.raises(socket.timeout):
            s.recv(10)
        client.remove_toxic("p", "t")  # upstream closes the connection on removal
        s.settimeout(5)
        assert s.recv(10) == b""


def test_slow_close_delays_close(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    def bye(conn: socket.socket) -> None:
        conn.sendall(b"bye")

    port = proxied(bye)
    client.add_toxic("p", "slow_close", {"delay": 300})
    with _connect(port) as s:
        t0 = time.perf_counter()
        assert s.recv(3) == b"bye"
        first = time.perf_counter() - t0
        assert s.recv(10) == b""
        closed = time.perf_counter() - t0
    assert first < 0.2 and closed >= 0.29, (first, closed)


# Toxicity: 400 connections, each hit (toxic applied) or not, independently with p = 0.5.
N = 400
BAND = (161, 239)


def _binomial_outside(n: int, p: float, lo: int, hi: int) -> float:
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1) if not lo <= k <= hi)


def test_toxicity_half_of_400_connections(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    # Type I error (a correct server fails): P(K outside [161, 239] | p=0.5) = 7.4e-5 <= 1e-4.
    # Type II error (a wrong server passes): 1.6% if its true rate is 0.35 or 0.65,
    # 8e-6 at 0.3 or 0.7, so rates off by 0.15 or more are caught.
    assert _binomial_outside(N, 0.5, *BAND) <= 1e-4
    assert 1 - _binomial_outside(N, 0.35, *BAND) < 0.02
    port = proxied(_echo)
    client.add_toxic("p", "limit_data", {"bytes": 0}, toxicity=0.5)  # hit: closed with no data
    hits = 0
    for _ in range(N):
        with _connect(port) as s:
            s.sendall(b"x")
            hits += s.recv(1) == b""
    assert BAND[0] <= hits <= BAND[1], f"{hits}/{N} connections hit, want {BAND}"


def test_backpressure_bounds_buffering(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    """A receiver that never reads must stall the sender, not grow the proxy's memory."""

    def sleeper(conn: socket.socket) -> None:
        time.sleep(3)

    port = proxied(sleeper)
    client.add_toxic("p", "latency", {"latency": 1}, stream="upstream")  # exercise the queued path
    with _connect(port) as s:
        s.setblocking(False)
        sent, chunk = 0, b"q" * 65536
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and sent < 256 * 2**20:
            try:
                sent += s.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
    # Kernel socket buffers on both hops plus the proxy's bounded queues hold a few MB;
    # an unbounded proxy would accept all 256 MB.
    print(f"backpressure: sender pushed {sent / 2**20:.1f} MiB")
    assert sent < 64 * 2**20, f"sender pushed {sent / 2**20:.1f} MiB into a stalled path"


def test_stacked_latency_adds_up(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    """Go's latency toxic stamps each chunk with when it let it go, so two 100 ms toxics make 200 ms."""
    port = proxied(_echo)
    client.add_toxic("p", "latency", {"latency": 100}, name="first")
    client.add_toxic("p", "latency", {"latency": 100}, name="second")
    p50 = statistics.median(_rtts(port, 7))
    assert 0.180 <= p50 <= 0.220, f"p50 {p50 * 1000:.1f} ms, want 200 +/- 10%"


def test_latency_across_directions_adds_up(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    port = proxied(_echo)
    client.add_toxic("p", "latency", {"latency": 60}, stream="upstream")
    client.add_toxic("p", "latency", {"latency": 40}, stream="downstream")
    p50 = statistics.median(_rtts(port, 7))
    assert 0.090 <= p50 <= 0.110, f"p50 {p50 * 1000:.1f} ms, want 100 +/- 10%"


STREAM_BYTES = 64 * 2**20


def _send_bulk(port: int, sink: CountingSink) -> float:
    """Send 64 MiB through ``port``; bytes per second from the first to the last byte the sink got."""
    chunk = b"b" * 2**16
    with _connect(port, timeout=10) as s:
        for _ in range(STREAM_BYTES // len(chunk)):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        assert int(s.recv(64) or b"0") == STREAM_BYTES
    return STREAM_BYTES / (sink.last - sink.first)


def test_latency_toxic_does_not_throttle_a_stream(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    """A 100 ms latency toxic delays a bulk stream; it must still carry >= 100 MB/s (Go pipelines its chunks)."""
    sink = CountingSink()
    port = proxied(sink.handle)
    client.add_toxic("p", "latency", {"latency": 100}, stream="upstream")
    t0 = time.perf_counter()
    rate = _send_bulk(port, sink)
    assert sink.first - t0 >= 0.095, "the stream's first byte must still be delayed 100 ms"
    print(f"bulk stream under 100 ms latency: {rate / 1e6:.0f} MB/s")
    assert rate >= 100e6, f"{rate / 1e6:.0f} MB/s under a 100 ms latency toxic, want >= 100"


def test_toxic_churn_keeps_every_byte_in_order(client: ToxiproxyClient, proxied) -> None:  # type: ignore[no-untyped-def]
    """Adding, updating and removing toxics mid-stream must neither drop, duplicate nor reorder data."""
    port = proxied(_echo)
    payload = os.urandom(8 * 2**20)
    got = bytearray()
    with _connect(port, timeout=10) as s:

        def send() -> None:
            for off in range(0, len(payload), 2**16):
                s.sendall(payload[off : off + 2**16])
            s.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        for i in range(12):
            stream = ("upstream", "downstream")[i % 2]
            client.add_toxic("p", "latency", {"latency": 5}, stream=stream, name=f"lat{i}")
            client.add_toxic("p", "slicer", {"average_size": 4096, "size_variation": 1000}, stream=stream, name=f"sl{i}")
            client.update_toxic("p", f"lat{i}", {"latency": 2})
            if i >= 2:
                client.remove_toxic("p", f"lat{i - 2}")
                client.remove_toxic("p", f"sl{i - 2}")
            got += s.recv(2**20)
        client.reset()
        while data := s.recv(2**20):
            got += data
        sender.join(5)
    assert len(got) == len(payload) and bytes(got) == payload
