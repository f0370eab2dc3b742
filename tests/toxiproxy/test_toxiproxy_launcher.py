"""Starting and stopping servers cleanly, and the client's timeouts."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from toxtcp import TcpServer, echo, port_of

from meshproof.errors import MeshproofError
from meshproof.toxiproxy.client import ToxiproxyClient, ToxiproxyError, python_client, start_server


def test_thread_server_stop_closes_listeners_and_connections() -> None:
    upstream = TcpServer(echo)
    running = start_server(mode="thread")
    api = ToxiproxyClient(running.url)
    port = port_of(api.create_proxy("a", upstream.addr)["listen"])
    live = socket.create_connection(("127.0.0.1", port), timeout=5)
    live.sendall(b"x")
    assert live.recv(1) == b"x"
    api_port = int(running.url.rsplit(":", 1)[1])
    servers_before = _server_threads()
    running.stop()
    running.stop()  # idempotent
    assert live.recv(1) == b""
    for p in (port, api_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", p), timeout=2)
    assert _server_threads() == servers_before - 1  # its loop thread ended
    live.close()
    upstream.close()


def _server_threads() -> int:
    return sum(t.name == "toxiproxy-server" for t in threading.enumerate())


def test_subprocess_server_round_trip() -> None:
    upstream = TcpServer(echo)
    with start_server(mode="subprocess") as running:
        assert running.kind == "builtin-subprocess" and running.pid
        api = ToxiproxyClient(running.url)
        port = port_of(api.create_proxy("a", upstream.addr)["listen"])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"sub")
            assert s.recv(3) == b"sub"
    with pytest.raises(ToxiproxyError):
        api.version()
    upstream.close()


def test_real_mode_without_binary_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MeshproofError) as err:
        start_server(mode="real")
    assert "not on PATH" in str(err.value)


def test_client_times_out_on_a_silent_server() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts (backlog) but never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        t0 = time.perf_counter()
        with pytest.raises(ToxiproxyError) as err:
            ToxiproxyClient(url, timeout=0.3).proxies()
        assert time.perf_counter() - t0 < 3 and "is a toxiproxy server listening" in str(err.value)
        t0 = time.perf_counter()
        with pytest.raises(Exception):
            python_client(url, timeout=0.3).proxies()
        assert time.perf_counter() - t0 < 3
    finally:
        silent.close()
