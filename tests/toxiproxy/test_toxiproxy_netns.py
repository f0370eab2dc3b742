"""Placement: API on the host loopback, proxy listener and upstream inside a pod netns."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from typing import Iterator

import pytest
from toxtcp import TcpServer, echo, port_of

from meshproof.netns_socket import current_netns_inode, socket_in_netns
from meshproof.toxiproxy.client import ToxiproxyClient, start_server

pytestmark = pytest.mark.lab


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root for ip netns")
    name = f"mpt-tox-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=10)


def test_socket_in_netns_keeps_its_netns_and_thread_returns(netns: str) -> None:
    before = current_netns_inode()
    inside = socket_in_netns(netns)
    try:
        inside.bind(("127.0.0.1", 0))
        inside.listen()
        port = inside.getsockname()[1]
        # Host loopback does not reach the socket: it lives in the pod netns.
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        with socket_in_netns(netns) as c:
            c.settimeout(2)
            c.connect(("127.0.0.1", port))
    finally:
        inside.close()
    assert current_netns_inode() == before


def test_socket_in_missing_netns_says_what_to_do() -> None:
    with pytest.raises(Exception) as err:
        socket_in_netns("/run/netns/mpt-tox-does-not-exist")
    assert "ip netns add" in str(err.value)


def test_proxy_inside_pod_netns(netns: str) -> None:
    upstream = TcpServer(echo, sock=socket_in_netns(netns))  # 127.0.0.1 inside the pod
    running = start_server(mode="thread", netns_for=lambda host: netns)
    try:
        assert running.url.startswith("http://127.0.0.1:")  # the API stays on the host loopback
        api = ToxiproxyClient(running.url)
        made = api.create_proxy("pod", upstream.addr, listen="127.0.0.1:0")
        port = port_of(made["listen"])
        assert port != 0
        with socket_in_netns(netns) as c:
            c.settimeout(5)
            c.connect(("127.0.0.1", port))
            c.sendall(b"from inside")
            assert c.recv(64) == b"from inside"
        api.add_toxic("pod", "limit_data", {"bytes": 2})
        with socket_in_netns(netns) as c:
            c.settimeout(5)
            c.connect(("127.0.0.1", port))
            c.sendall(b"abcdef")
            assert c.recv(64) == b"ab"
        api.close()
    finally:
        running.stop()
        upstream.close()
