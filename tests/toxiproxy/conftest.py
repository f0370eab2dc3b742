"""Fixtures: one toxiproxy server per session (real toxiproxy-server if on PATH), clean per test."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest
import toxiproxy

from meshproof.toxiproxy.client import RunningServer, ToxiproxyClient, python_client, start_server
from toxtcp import TcpServer, echo


@pytest.fixture(scope="session")
def tox_server() -> Iterator[RunningServer]:
    with start_server() as running:
        yield running


@pytest.fixture
def client(tox_server: RunningServer) -> Iterator[ToxiproxyClient]:
    c = ToxiproxyClient(tox_server.url)
    c.delete_all()
    yield c
    c.delete_all()
    c.close()


@pytest.fixture
def http(tox_server: RunningServer, client: ToxiproxyClient) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tox_server.url, timeout=5) as h:
        yield h


@pytest.fixture
def tp(tox_server: RunningServer, client: ToxiproxyClient) -> toxiproxy.Toxiproxy:
    return python_client(tox_server.url)


@pytest.fixture
def echo_server() -> Iterator[TcpServer]:
    srv = TcpServer(echo)
    yield srv
    srv.close()
