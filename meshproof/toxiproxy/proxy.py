"""Proxies: a listener, its live connections and its toxic chain (proxy.go, toxic_collection.go)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from meshproof.netns_socket import socket_in_netns
from meshproof.toxiproxy import gojson
from meshproof.toxiproxy.errors import (
    BAD_REQUEST_BODY,
    MISSING_FIELD,
    TOXIC_NOT_FOUND,
    ApiError,
    internal,
)
from meshproof.toxiproxy.link import Connection, Endpoint
from meshproof.toxiproxy.toxics import STREAMS, Toxic, parse_attributes, parse_new_toxic, parse_toxicity

NetnsFor = Callable[[str], "str | None"]
CONNECT_TIMEOUT_S = 10.0


def split_hostport(addr: str) -> tuple[str, int]:
    """'h:p', '[v6]:p' or ':p' -> (host, port); raises ValueError with the reason."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {addr!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _family(host: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


class Metrics:
    """Byte counters per direction (METRICS.md: received/sent bytes per link direction)."""

    def __init__(self) -> None:
        self.bytes: dict[tuple[str, str], int] = defaultdict(int)

    def add(self, direction: str, kind: str, n: int) -> None:
        self.bytes[(direction, kind)] += n


class Proxy:
    """One named proxy; all methods run on the server's event loop."""

    def __init__(self, name: str, listen: str, upstream: str, netns_for: NetnsFor | None) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.netns_for = netns_for
        self.toxics: dict[str, Toxic] = {}  # insertion order = chain order
        self.metrics = Metrics()
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[Connection] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._generation = 0

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream, "enabled": self.enabled}

    def with_toxics(self) -> dict[str, object]:
        return {**self.to_json(), "toxics": self.toxic_array()}

    def _ns(self, host: str) -> str | None:
        return self.netns_for(host) if self.netns_for is not None else None

    # ---- lifecycle
    async def start(self) -> None:
        """Listen; the reported ``listen`` becomes the real address (port 0 picks one)."""
        if self.enabled:
            return
        try:
            host, port = split_hostport(self.listen or ":0")  # Go: "" listens like ":0"
        except ValueError as exc:
            raise internal(f"listen tcp {self.listen}: {exc}") from exc
        bind_host = host or "::"
        family = _family(bind_host)
        try:
            sock = socket_in_netns(self._ns(bind_host), family)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and not host:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind((bind_host, port))
                sock.listen(512)
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
        except OSError as exc:
            raise internal(f"listen tcp {self.listen}: bind: {exc.strerror or exc}".lower()) from exc
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Endpoint(self._accepted), sock=sock)
        real = sock.getsockname()
        self.listen = join_hostport(real[0], real[1])
        self.enabled = True

    def stop(self) -> None:
        """Stop listening and drop every connection (upstream's stop())."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._pending):
            task.cancel()
        for conn in list(self._conns):
            conn.close(reset=False)

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        if listen != self.listen or upstream != self.upstream:
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled != self.enabled:
            if enabled:
                await self.start()
            else:
                self.stop()

    # ---- connections
    def _accepted(self, client: Endpoint) -> None:
        assert client.transport is not None
        client.transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._dial(client))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _dial(self, client: Endpoint) -> None:
        loop = asyncio.get_running_loop()
        up = Endpoint()
        sock: socket.socket | None = None
        try:
            host, port = split_hostport(self.upstream)
            infos = await loop.getaddrinfo(host or "localhost", port, type=socket.SOCK_STREAM)
            family, _, _, _, addr = infos[0]
            ns = self._ns(str(addr[0]))
            if ns is None:
                sock = socket.socket(family, socket.SOCK_STREAM)
            else:
                sock = await asyncio.to_thread(socket_in_netns, ns, family)
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, addr), CONNECT_TIMEOUT_S)
            await loop.create_connection(lambda: up, sock=sock)
            sock = None
        except (OSError, ValueError, asyncio.TimeoutError):
            if sock is not None:
                sock.close()
            client.shut(reset=False)  # upstream unreachable: close the client, as upstream does
            return
        except asyncio.CancelledError:
            if sock is not None:
                sock.close()
            client.shut(reset=False)
            raise
        if client.closed or not self.enabled:
            client.shut(reset=False)
            up.shut(reset=False)
            return
        conn = Connection(self, client, up)
        self._conns.add(conn)
        conn.apply(self.chains())
        assert client.transport is not None
        client.transport.resume_reading()

    def forget(self, conn: Connection) -> None:
        self._conns.discard(conn)

    @property
    def connection_count(self) -> int:
        return len(self._conns)

    # ---- toxics
    def chains(self) -> dict[str, list[Toxic]]:
        out: dict[str, list[Toxic]] = {s: [] for s in STREAMS}
        for toxic in self.toxics.values():
            out[toxic.direction].append(toxic)
        return out

    def toxic_array(self) -> list[dict[str, object]]:
        """Upstream's GetToxicArray: upstream chain first, then downstream."""
        chains = self.chains()
        return [t.to_json() for s in STREAMS for t in chains[s]]

    def _push(self) -> None:
        chains = self.chains()
        for conn in list(self._conns):
            conn.apply(chains)

    def add_toxic(self, body: object) -> Toxic:
        toxic = parse_new_toxic(body, self.toxics)
        self._generation += 1
        toxic.generation = self._generation
        self.toxics[toxic.name] = toxic
        self._push()
        return toxic

    def update_toxic(self, name: str, body: object) -> Toxic:
        toxic = self.toxics.get(name)
        if toxic is None:
            raise TOXIC_NOT_FOUND
        if not isinstance(body, dict):
            raise BAD_REQUEST_BODY.wrap("expected a JSON object")
        attrs = parse_attributes(toxic.type, body.get("attributes"), base=toxic.attributes)
        toxicity = parse_toxicity(body.get("toxicity"), toxic.toxicity)
        self._generation += 1
        toxic.attributes, toxic.toxicity, toxic.generation = attrs, toxicity, self._generation
        self._push()
        return toxic

    def remove_toxic(self, name: str) -> None:
        if self.toxics.pop(name, None) is None:
            raise TOXIC_NOT_FOUND
        self._push()

    def reset_toxics(self) -> None:
        self.toxics.clear()
        self._push()


@dataclass
class ProxySpec:
    """A proxy's fields as a request gives them."""

    name: str
    listen: str
    upstream: str
    enabled: bool


def parse_spec(data: object, struct: str, defaults: ProxySpec) -> ProxySpec:
    """Decode proxy fields like Go into ``struct`` (its name only shows in errors): strict types, null keeps the default."""
    if not isinstance(data, dict):
        raise BAD_REQUEST_BODY.wrap("expected a JSON object")
    return ProxySpec(
        gojson.optional(data, "name", gojson.string, f"{struct}.name", defaults.name),
        gojson.optional(data, "listen", gojson.string, f"{struct}.listen", defaults.listen),
        gojson.optional(data, "upstream", gojson.string, f"{struct}.upstream", defaults.upstream),
        gojson.optional(data, "enabled", gojson.boolean, f"{struct}.enabled", defaults.enabled),
    )


def check_new(spec: ProxySpec, where: str = "") -> None:
    """Go's required-field checks for create and populate."""
    if not spec.name:
        raise MISSING_FIELD.wrap(f"name{where}")
    if not spec.upstream:
        raise MISSING_FIELD.wrap(f"upstream{where}")


async def resolved_listen(listen: str) -> str:
    """``listen`` as Go's net.ResolveTCPAddr(...).String() writes it, to compare with a running proxy's address.

    Go's populate keeps a proxy whose listen resolves to the address it
    already listens on (``localhost:8080`` is ``127.0.0.1:8080``), and
    reports a listen it cannot resolve as an error (500).
    """
    if not listen:
        return ":0"
    try:
        host, port = split_hostport(listen)
    except ValueError as exc:
        raise internal(f"address {listen}: missing port in address") from exc
    if not host:
        return f":{port}"
    try:
        ipaddress.ip_address(host)
        return join_hostport(host, port)
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise internal(f"lookup {host}: no such host") from exc
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # Go prefers an IPv4 address
    return join_hostport(str(infos[0][4][0]), port)


__all__ = ["ApiError", "NetnsFor", "Proxy", "ProxySpec", "check_new", "join_hostport", "parse_spec", "split_hostport"]
