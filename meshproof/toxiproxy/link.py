"""The data plane: one proxied TCP connection as two one-way links.

With no toxic on a link, bytes go straight from one transport to the other
inside the read callback (the cheap path that keeps added latency low).
With toxics, each toxic runs as its own task between bounded pipes, the way
Go's toxiproxy runs one goroutine per ToxicStub on a chain of channels
(link.go): chunks are pipelined, so a latency toxic shifts a stream in time
instead of throttling it, and two latency toxics add up. Memory per
connection stays bounded: reads are at most READ_CHUNK, each pipe has a byte
capacity (a full first pipe or a full peer write buffer pauses reading), and
the TCP window pushes back on the sender.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Callable, Protocol

from meshproof.toxiproxy.toxics import LinkState, Stage, Toxic, buffer_bytes, new_stage, roll

if TYPE_CHECKING:
    from meshproof.toxiproxy.proxy import Proxy

READ_CHUNK = 64 * 1024
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


class Out(Protocol):
    """Where a stage sends its chunks: the next stage's pipe or the link's writer."""

    async def put(self, data: bytes, ts: float) -> bool:
        """Deliver a chunk; False if this target was spliced out (ask again for the new one)."""
        ...


def _wake(waiter: "asyncio.Future[None] | None") -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Pipe:
    """A bounded FIFO of (data, read time) chunks into one stage: Go's channel of StreamChunk.

    ``capacity`` is in bytes; a put waits while the pipe holds that much, so
    one chunk always fits. EOF travels as an empty chunk, after the data.
    """

    def __init__(self, capacity: int, on_get: Callable[[], None]) -> None:
        self.capacity = capacity
        self.size = 0
        self.closed = False
        self._items: deque[tuple[bytes, float]] = deque()
        self._on_get = on_get
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def full(self) -> bool:
        return self.size >= self.capacity

    def put_nowait(self, data: bytes, ts: float) -> None:
        self._items.append((data, ts))
        self.size += len(data)
        _wake(self._getter)

    async def put(self, data: bytes, ts: float) -> bool:
        while self.full() and not self.closed:
            self._putter = asyncio.get_running_loop().create_future()
            await self._putter
        if self.closed:
            return False
        self.put_nowait(data, ts)
        return True

    async def get(self) -> tuple[bytes, float]:
        while not self._items:
            self._getter = asyncio.get_running_loop().create_future()
            await self._getter
        data, ts = self._items.popleft()
        self.size -= len(data)
        if not self.full():
            _wake(self._putter)
        self._on_get()
        return data, ts

    def close(self) -> None:
        """This pipe's stage left the chain: a waiting writer retries on its replacement."""
        self.closed = True
        _wake(self._putter)


class Writer:
    """The end of a link's chain: writes to the destination socket, waiting while its buffer is full."""

    def __init__(self, link: "Link") -> None:
        self.link = link

    async def put(self, data: bytes, ts: float) -> bool:
        await self.link.writable.wait()
        if data:
            self.link.write(data)
        else:
            self.link.finish()
        return True


class Runner:
    """One toxic running on one link: a task taking chunks from its inbox through its stage (Go's ToxicStub)."""

    def __init__(self, link: "Link", toxic: Toxic, stage: Stage, out: Out) -> None:
        self.link = link
        self.toxic = toxic
        self.stage = stage
        self.inbox = Pipe(buffer_bytes(toxic), link.on_pipe_get)
        self.out = out
        self.leaving = False
        self.idle = False
        stage.start()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while not (self.leaving and not self.inbox):
                self.idle = True
                data, ts = await self.inbox.get()
                self.idle = False
                stage = self.stage
                if not data:
                    await stage.on_eof()
                    await self.emit(_EOF, ts)
                    return
                await stage.process(data, ts, self.emit)
            self.link.splice(self)
        except (ConnectionError, OSError):
            self.link.conn.close(reset=False)

    async def emit(self, data: bytes, ts: float) -> None:
        while not await self.out.put(data, ts):  # the next stage left meanwhile: send to its successor
            pass

    def replace(self, toxic: Toxic, stage: Stage) -> None:
        """An updated toxic: the held chunk goes on at once (Go interrupts the stub), the rest meet the new stage."""
        self.stage.stop(removed=False)
        self.toxic, self.stage = toxic, stage
        stage.start()

    def leave(self) -> None:
        """A removed toxic: what it still holds passes through untouched, then it splices itself out."""
        self.stage.stop(removed=True)
        if self.link.conn.closed:
            return
        self.stage = Stage(self.toxic, self.link.conn, self.link.state)
        self.leaving = True
        if self.idle and not self.inbox:
            self.task.cancel()
            self.link.splice(self)

    def cancel(self) -> None:
        self.stage.stop(removed=False)
        self.task.cancel()
        self.inbox.close()


class Link:
    """One direction of a connection with its own running toxics."""

    def __init__(self, conn: "Connection", src: Endpoint, dst: Endpoint, direction: str) -> None:
        self.conn = conn
        self.src, self.dst = src, dst
        self.direction = direction
        self.state = LinkState()
        self.runners: list[Runner] = []
        self._by_name: dict[str, Runner] = {}
        self._writer = Writer(self)
        self._pause: set[str] = set()
        self.writable = asyncio.Event()
        self.writable.set()
        self.eof_read = False
        self.done = False
        self._loop = asyncio.get_running_loop()
        src.reader, dst.writer = self, self

    @property
    def head(self) -> Pipe | None:
        """The first stage's inbox, where reads go; None: no toxic, reads are written straight through."""
        return self.runners[0].inbox if self.runners else None

    # ---- toxics
    def refresh(self, chain: list[Toxic]) -> None:
        """Bring running stages in line with the proxy's chain for this direction."""
        wanted = {t.name for t in chain}
        for name in [n for n in self._by_name if n not in wanted]:
            self._by_name.pop(name).leave()
        for toxic in chain:
            runner = self._by_name.get(toxic.name)
            if runner is None and not self.eof_read:  # Go closes a toxic added after the link's EOF
                self._by_name[toxic.name] = self._append(toxic)
            elif runner is not None and runner.toxic.generation != toxic.generation:
                runner.replace(toxic, self._stage(toxic))

    def _stage(self, toxic: Toxic) -> Stage:
        """The toxic, or a pass-through if its toxicity roll misses (Go's Run picks NoopToxic)."""
        if roll(toxic):
            return new_stage(toxic, self.conn, self.state)
        return Stage(toxic, self.conn, self.state)

    def _append(self, toxic: Toxic) -> Runner:
        """New toxics join at the end of the chain, as in Go's ToxicLink.AddToxic."""
        runner = Runner(self, toxic, self._stage(toxic), self._writer)
        if self.runners:
            self.runners[-1].out = runner.inbox
        self.runners.append(runner)
        return runner

    def splice(self, runner: Runner) -> None:
        """Take an emptied, removed runner out of the chain: its predecessor now sends to its successor."""
        i = self.runners.index(runner)
        if i > 0:
            self.runners[i - 1].out = runner.out
        del self.runners[i]
        runner.inbox.close()
        if self.head is None and not self.writable.is_set():
            self._pause_src("dst")  # direct writes again: a full peer buffer must stop reading
        self.on_pipe_get()

    def stop_stages(self) -> None:
        for runner in self.runners:
            runner.cancel()
        self.runners.clear()
        self._by_name.clear()

    # ---- data
    def feed(self, data: bytes) -> None:
        if data:
            self.conn.proxy.metrics.add(self.direction, "received", len(data))
        else:
            self.eof_read = True
        head = self.head
        if head is None:
            if data:
                self.write(data)
            else:
                self.finish()
            return
        head.put_nowait(data, self._loop.time())
        if head.full():
            self._pause_src("queue")

    def on_pipe_get(self) -> None:
        """A stage took a chunk: read again once the first pipe is at most half full."""
        head = self.head
        if "queue" in self._pause and (head is None or head.size <= head.capacity // 2):
            self._resume_src("queue")

    def write(self, data: bytes) -> None:
        t = self.dst.transport
        if t is not None and not t.is_closing():
            t.write(data)
            self.conn.proxy.metrics.add(self.direction, "sent", len(data))

    def finish(self) -> None:
        """The source half-closed and everything before it went out: pass the FIN on."""
        self.done = True
        t = self.dst.transport
        if t is not None and not t.is_closing() and t.can_write_eof():
            t.write_eof()
        self.conn.link_done()

    # ---- backpressure
    def dst_paused(self) -> None:
        """The peer's write buffer is full: without toxics stop reading; with toxics the pipes fill first."""
        self.writable.clear()
        if self.head is None:
            self._pause_src("dst")

    def dst_resumed(self) -> None:
        self.writable.set()
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
