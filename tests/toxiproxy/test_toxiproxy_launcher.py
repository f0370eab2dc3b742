"""Starting and stopping servers cleanly, and the client's timeouts."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
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


def _cli(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m meshproof.toxiproxy`` on a free port with ``args``; returns it and its API URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshproof.toxiproxy", "-host", "127.0.0.1", "-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    assert line.startswith("toxiproxy API listening on "), line
    return proc, line.rsplit(" ", 1)[1]


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=5)
    return err.decode()


def test_cli_config_populates_at_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    upstream = TcpServer(echo)
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "from-file", "listen": "127.0.0.1:0", "upstream": upstream.addr}]))
    proc, url = _cli("-config", str(config))
    try:
        proxy = ToxiproxyClient(url).get_proxy("from-file")
        with socket.create_connection(("127.0.0.1", port_of(proxy["listen"])), timeout=5) as s:
            s.sendall(b"cfg")
            assert s.recv(3) == b"cfg"
    finally:
        _stop(proc)
        upstream.close()


def test_cli_bad_config_reported_server_still_starts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "proxies.json"
    config.write_text('[{"name": "no-upstream"}]')
    proc, url = _cli("-config", str(config))
    assert ToxiproxyClient(url).proxies() == {}
    assert "missing required field: upstream at proxy 1" in _stop(proc)


def _hit_pattern(seed: str, upstream: TcpServer) -> list[bool]:
    """Which of 40 sequential connections a toxicity-0.5 limit_data toxic hits, on a fresh server seeded ``seed``."""
    proc, url = _cli("-seed", seed)
    try:
        api = ToxiproxyClient(url)
        port = port_of(api.create_proxy("p", upstream.addr)["listen"])
        api.add_toxic("p", "limit_data", {"bytes": 0}, toxicity=0.5)
        hits = []
        for _ in range(40):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"x")
                hits.append(s.recv(1) == b"")
        return hits
    finally:
        _stop(proc)


def test_cli_seed_makes_toxicity_rolls_repeatable() -> None:
    """Go's -seed seeds math/rand; the same seed gives the same rolls (another seed differs: p = 2**-40 otherwise)."""
    upstream = TcpServer(echo)
    try:
        first, again, other = _hit_pattern("42", upstream), _hit_pattern("42", upstream), _hit_pattern("43", upstream)
    finally:
        upstream.close()
    assert first == again
    assert first != other


def test_cli_version_flag() -> None:
    out = subprocess.run([sys.executable, "-m", "meshproof.toxiproxy", "-version"], capture_output=True, timeout=10)
    assert out.returncode == 0 and out.stdout.decode() == "toxiproxy-server version 2.12.0\n"
