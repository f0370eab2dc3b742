"""The data plane: one proxied TCP connection as two one-way links.

With no toxic on a link, bytes go straight from one transport to the other
inside the read callback (the cheap path that keeps added latency low).
With toxics, chunks queue up (bounded) and one task runs them through the
toxic chain in order. Memory per connection stays bounded: reads are at most
READ_CHUNK, a full queue or a full peer write buffer pauses reading, and the
TCP window pushes back on the sender.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Callable

from meshproof.toxiproxy.toxics import LinkState, Stage, Toxic, new_stage, roll

if TYPE_CHECKING:
    from meshproof.toxiproxy.proxy import Proxy

READ_CHUNK = 64 * 1024
QUEUE_HIGH = 256 * 1024
QUEUE_LOW = 64 * 1024
WRITE_HIGH = 256 * 1024
_EOF = b""


class Endpoint(asyncio.BufferedProtocol):
    """One socket of a proxied connection: the client side or the upstream side."""

    def __init__(self, on_made: Callable[["Endpoint"], None] | None = None) -> None:
        self._buf = bytearray(READ_CHUNK)
        self._view = memoryview(self._buf)
        self.transport: asyncio.Transport | None = None
        self.reader: Link | None = None  # link reading from this socket
        self.writer: Link | None = None  # link writing to this socket
        self.conn: Connection | None = None
        self.closed = False
        self._on_made = on_made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        if self._on_made is not None:
            self._on_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if self.reader is not None:
            self.reader.feed(bytes(self._view[:nbytes]))

    def eof_received(self) -> bool:
        if self.reader is not None:
            self.reader.feed(_EOF)
        return True  # keep the other half open: half-close is passed on

    def pause_writing(self) -> None:
        if self.writer is not None:
            self.writer.dst_paused()

    def resume_writing(self) -> None:
        if self.writer is not None:
            self.writer.dst_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.conn is not None:
            self.conn.close(reset=False)

    def shut(self, reset: bool) -> None:
        t = self.transport
        if t is None or t.is_closing():
            if reset and t is not None:
                t.abort()
            return
        if reset:
            sock = t.get_extra_info("socket")
            if sock is not None:
                try:  # linger 0: close sends RST instead of FIN
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            t.abort()
        else:
            t.close()


class Link:
    """One direction of a connection with its own running toxics."""

    def __init__(self, conn: "Connection", src: Endpoint, dst: Endpoint, direction: str) -> None:
        self.conn = conn
        self.src, self.dst = src, dst
        self.direction = direction
        self.state = LinkState()
        self._rolled: dict[str, tuple[int, Stage | None]] = {}
        self.stages: list[Stage] = []
        self._queue: deque[tuple[float, bytes]] = deque()
        self._queued = 0
        self._task: asyncio.Task[None] | None = None
        self._pause: set[str] = set()
        self._writable = asyncio.Event()
        self._writable.set()
        self.done = False
        self._loop = asyncio.get_running_loop()
        src.reader, dst.writer = self, self

    # ---- toxics
    def refresh(self, chain: list[Toxic]) -> None:
        """Bring running stages in line with the proxy's chain for this direction."""
        seen = set()
        for toxic in chain:
            seen.add(toxic.name)
            old = self._rolled.get(toxic.name)
            if old is not None and old[0] == toxic.generation:
                continue
            if old is not None and old[1] is not None:
                old[1].stop(removed=False)
            stage = new_stage(toxic, self.conn, self.state) if roll(toxic) else None
            self._rolled[toxic.name] = (toxic.generation, stage)
            if stage is not None:
                stage.start()
        for name in [n for n in self._rolled if n not in seen]:
            _, stage = self._rolled.pop(name)
            if stage is not None:
                stage.stop(removed=True)
        self.stages = [s for t in chain if (s := self._rolled[t.name][1]) is not None]

    def stop_stages(self) -> None:
        for _, stage in self._rolled.values():
            if stage is not None:
                stage.stop(removed=False)
        self._rolled.clear()
        self.stages = []
        if self._task is not None:
            self._task.cancel()

    # ---- data
    def feed(self, data: bytes) -> None:
        if data:
            self.conn.proxy.metrics.add(self.direction, "received", len(data))
        if not self.stages and not self._queue and self._task is None:
            if data:
                self._write(data)
            else:
                self._finish()
            return
        self._queue.append((self._loop.time(), data))
        self._queued += len(data)
        if self._queued > QUEUE_HIGH:
            self._pause_src("queue")
        if self._task is None:
            self._task = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                ts, data = self._queue.popleft()
                self._queued -= len(data)
                if self._queued < QUEUE_LOW:
                    self._resume_src("queue")
                stages = list(self.stages)
                if not data:
                    for stage in stages:
                        await stage.on_eof()
                    self._finish()
                    return
                await self._run(stages, 0, data, ts)
        except (ConnectionError, OSError):
            self.conn.close(reset=False)
        finally:
            self._task = None

    async def _run(self, stages: list[Stage], i: int, data: bytes, ts: float) -> None:
        if i == len(stages):
            await self._writable.wait()
            self._write(data)
            return

        async def emit(out: bytes) -> None:
            await self._run(stages, i + 1, out, ts)

        await stages[i].process(data, ts, emit)

    def _write(self, data: bytes) -> None:
        t = self.dst.transport
        if t is not None and not t.is_closing():
            t.write(data)
            self.conn.proxy.metrics.add(self.direction, "sent", len(data))

    def _finish(self) -> None:
        """The source half-closed and everything before it went out: pass the FIN on."""
        self.done = True
        t = self.dst.transport
        if t is not None and not t.is_closing() and t.can_write_eof():
            t.write_eof()
        self.conn.link_done()

    # ---- backpressure
    def dst_paused(self) -> None:
        self._writable.clear()
        self._pause_src("dst")

    def dst_resumed(self) -> None:
        self._writable.set()
        self._resume_src("dst")

    def _pause_src(self, why: str) -> None:
        if not self._pause and self.src.transport is not None and not self.src.transport.is_closing():
            self.src.transport.pause_reading()
        self._pause.add(why)

    def _resume_src(self, why: str) -> None:
        if why not in self._pause:
            return
        self._pause.discard(why)
        if not self._pause and self.src.transport is not None and not self.src.transport.is_closing():
            self.src.transport.resume_reading()


class Connection:
    """A client connection and its upstream connection, joined by two links."""

    def __init__(self, proxy: "Proxy", client: Endpoint, upstream: Endpoint) -> None:
        self.proxy = proxy
        self.client, self.upstream = client, upstream
        client.conn = upstream.conn = self
        self.up = Link(self, client, upstream, "upstream")
        self.down = Link(self, upstream, client, "downstream")
        self.closed = False

    def apply(self, chains: dict[str, list[Toxic]]) -> None:
        if self.closed:
            return
        self.up.refresh(chains["upstream"])
        self.down.refresh(chains["downstream"])

    def link_done(self) -> None:
        if self.up.done and self.down.done:
            self.close(reset=False)

    def close_connection(self, reset: bool = False) -> None:
        """The toxics' handle (LinkControl): end this connection."""
        self.close(reset)

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.up.stop_stages()
        self.down.stop_stages()
        self.client.shut(reset)
        self.upstream.shut(reset)
        self.proxy.forget(self)
