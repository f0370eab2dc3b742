"""Toxic types: their attributes (as in toxiproxy's toxics/*.go) and what they do to a link.

A ``Toxic`` is the API object. A ``Stage`` is that toxic running on one
link (one direction of one TCP connection): toxicity is rolled once per
stage, the way upstream rolls once per ToxicStub run, so a toxic with
toxicity 0.5 hits about half of the connections, not half of the packets.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Container, Protocol

from meshproof.toxiproxy import gojson
from meshproof.toxiproxy.errors import (
    BAD_REQUEST_BODY,
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    TOXIC_ALREADY_EXISTS,
    ApiError,
)

# Attribute names and their zero values, per type (toxics/*.go json tags).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "noop": (),
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "slicer": ("average_size", "size_variation", "delay"),
    "limit_data": ("bytes",),
}
STREAMS = ("upstream", "downstream")

Emit = Callable[[bytes, float], Awaitable[None]]

# Bytes a toxic's inbox holds before its feeder waits. Go gives the latency
# toxic a 1024-chunk channel (GetBufferSize) of reads from io.Copy's 32 KiB
# buffer, others an unbuffered one: 32 MiB lets a 100 ms toxic carry
# ~300 MB/s; about one read stands for "unbuffered".
LATENCY_BUFFER_BYTES = 1024 * 32 * 1024
DEFAULT_BUFFER_BYTES = 64 * 1024


class LinkControl(Protocol):
    """What a stage may do to its connection."""

    def close_connection(self, reset: bool = False) -> None: ...


@dataclass
class Toxic:
    """A toxic as the API shows it; ``generation`` changes on every update."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]
    generation: int = 0

    @property
    def direction(self) -> str:
        """The link the toxic runs on; ``stream`` keeps the client's spelling, as Go's wrapper does."""
        return self.stream.lower()

    def to_json(self) -> dict[str, object]:
        tox = self.toxicity
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": int(tox) if float(tox).is_integer() else tox,
        }


# Go struct and field types behind each toxic's attributes (toxics/*.go), for error messages.
GO_TYPES: dict[str, tuple[str, str]] = {
    "noop": ("NoopToxic", "int64"),
    "latency": ("LatencyToxic", "int64"),
    "bandwidth": ("BandwidthToxic", "int64"),
    "slow_close": ("SlowCloseToxic", "int64"),
    "timeout": ("TimeoutToxic", "int64"),
    "reset_peer": ("ResetToxic", "int64"),
    "slicer": ("SlicerToxic", "int"),
    "limit_data": ("LimitDataToxic", "int64"),
}


def parse_attributes(type_: str, raw: object, base: dict[str, int] | None = None) -> dict[str, int]:
    """Merge JSON attributes into ``base``; unknown keys are ignored, as Go's decoder does."""
    attrs = dict(base) if base is not None else {k: 0 for k in ATTRIBUTES[type_]}
    struct_name, go_type = GO_TYPES[type_]
    if raw is None:
        return attrs
    if not isinstance(raw, dict):
        raise gojson.type_error(gojson.what(raw), f"{struct_name}.attributes", f"toxics.{struct_name}")
    for key in ATTRIBUTES[type_]:
        if raw.get(key) is not None:
            attrs[key] = gojson.integer(raw[key], f"{struct_name}.attributes.{key}", go_type)
    return attrs


def parse_toxicity(raw: object, default: float) -> float:
    """Go keeps toxicity as a float32; JSON null or absence keeps ``default``."""
    return default if raw is None else gojson.float32(raw, "ToxicWrapper.toxicity")


def parse_new_toxic(body: object, taken: Container[str]) -> Toxic:
    """A toxic from a POST /proxies/{proxy}/toxics body, checked in the order of Go's AddToxicJson."""
    if not isinstance(body, dict):
        raise BAD_REQUEST_BODY.wrap("expected a JSON object")
    name = gojson.optional(body, "name", gojson.string, "ToxicWrapper.name", "")
    type_ = gojson.optional(body, "type", gojson.string, "ToxicWrapper.type", "")
    stream = gojson.optional(body, "stream", gojson.string, "ToxicWrapper.stream", "downstream")
    toxicity = parse_toxicity(body.get("toxicity"), 1.0)
    if stream.lower() not in STREAMS:
        raise INVALID_STREAM
    name = name or f"{type_}_{stream}"  # Go formats the stream as given, case and all
    if type_ not in ATTRIBUTES:
        raise INVALID_TOXIC_TYPE
    if name in taken:
        raise TOXIC_ALREADY_EXISTS
    return Toxic(name, type_, stream, toxicity, parse_attributes(type_, body.get("attributes")))


# ---------------------------------------------------------------- runtime


@dataclass
class LinkState:
    """Per-link memory that survives a toxic update (limit_data's byte count)."""

    transmitted: dict[str, int] = field(default_factory=dict)


class Stage:
    """A toxic active on one link. Subclasses override what they change."""

    def __init__(self, toxic: Toxic, link: LinkControl, state: LinkState) -> None:
        self.toxic = toxic
        self.a = toxic.attributes
        self.link = link
        self.state = state
        self._timers: list[asyncio.TimerHandle] = []
        self._interrupted = False
        self._wake: asyncio.Future[bool] | None = None

    def start(self) -> None:
        """Called once when the stage joins the link."""

    async def process(self, data: bytes, ts: float, emit: Emit) -> None:
        await emit(data, ts)

    async def on_eof(self) -> None:
        """Called when the source half-closed, before the close is passed on."""

    def stop(self, removed: bool) -> None:
        """Updated or removed: cut any sleep short, so the chunk in hand goes on (Go's stub.Interrupt)."""
        self._interrupted = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(False)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopped meanwhile; False when cut short."""
        if self._interrupted:
            return False
        if seconds <= 0:
            return True
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = loop.call_later(seconds, _resolve, wake)
        try:
            return await wake
        finally:
            timer.cancel()
            self._wake = None

    def _later(self, ms: int, reset: bool) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(max(ms, 0) / 1000, self.link.close_connection, reset))


def _resolve(wake: "asyncio.Future[bool]") -> None:
    if not wake.done():
        wake.set_result(True)


class Latency(Stage):
    def delay_s(self) -> float:
        """latency + a uniform draw from [-jitter, jitter), as Go's rand.Int63n(2*jitter) - jitter."""
        latency, jitter = self.a["latency"], self.a["jitter"]
        if jitter > 0:
            latency += random.randrange(-jitter, jitter)
        return latency / 1000

    async def process(self, data: bytes, ts: float, emit: Emit) -> None:
        """Go's LatencyToxic.Pipe: sleep the delay minus the chunk's age, then stamp ts + sleep.

        Measuring from the timestamp pipelines a stream (each chunk waits only
        its own remainder); stamping ts + sleep makes the next latency toxic
        measure from about when this one let the chunk go, so two add up.
        """
        sleep = self.delay_s() - (asyncio.get_running_loop().time() - ts)
        if await self._sleep(sleep):
            ts += sleep
        await emit(data, ts)


class Bandwidth(Stage):
    """rate KB/s, KB = 1000 bytes as upstream; slices of <= 10 ms worth of data."""

    def start(self) -> None:
        self._next = asyncio.get_running_loop().time()

    async def process(self, data: bytes, ts: float, emit: Emit) -> None:
        rate = self.a["rate"] * 1000  # bytes per second
        if rate <= 0:
            await emit(data, ts)
            return
        loop = asyncio.get_running_loop()
        piece = max(rate // 100, 1)
        for off in range(0, len(data), piece):
            part = data[off : off + piece]
            self._next = max(self._next, loop.time()) + len(part) / rate
            await self._sleep(self._next - loop.time())
            await emit(part, ts)


class SlowClose(Stage):
    async def on_eof(self) -> None:
        await self._sleep(self.a["delay"] / 1000)


class Timeout(Stage):
    """Drops everything; closes after ``timeout`` ms (never if 0)."""

    def start(self) -> None:
        if self.a["timeout"] > 0:
            self._later(self.a["timeout"], reset=False)

    async def process(self, data: bytes, ts: float, emit: Emit) -> None:
        return None

    def stop(self, removed: bool) -> None:
        super().stop(removed)
        if removed:
            # Upstream's Cleanup: data was dropped, so the stream is broken.
            self.link.close_connection(False)


class ResetPeer(Stage):
    """On the first data, waits ``timeout`` ms then resets (RST) the connection."""

    def start(self) -> None:
        self._armed = False

    def _arm(self) -> None:
        if not self._armed:
            self._armed = True
            self._later(self.a["timeout"], reset=True)

    async def process(self, data: bytes, ts: float, emit: Emit) -> None:
        self._arm()

    async def on_eof(self) -> None:
        self._arm()
        await self._sleep(max(self.a["timeout"], 0) / 1000 + 1)


class Slicer(Stage):
    def cuts(self, size: int) -> list[int]:
        avg, var = self.a["average_size"], max(self.a["size_variation"], 0)
        if avg <= 0:
            return [0, size]
        out = [0]
        todo = [(0, size)]
        while todo:  # iterative halving, bounded by size / avg pieces
            start, end = todo.pop()
            if (end - start) - avg <= var or end - start < 2:
                out.append(end)
                continue
            mid = start + (end - start) // 2 + (random.randint(-var, var) if var else 0)
            mid = min(max(mid, start + 1), end - 1)
            todo.append((mid, end))
            todo.append((start, mid))
        return out

    async def process(self, data: bytes, ts: float, emit: Emit) -> None:
        cuts = self.cuts(len(data))
        delay = max(self.a["delay"], 0) / 1e6
        for i in range(1, len(cuts)):
            await emit(data[cuts[i - 1] : cuts[i]], ts)
            if delay and i < len(cuts) - 1:
                await self._sleep(delay)


class LimitData(Stage):
    async def process(self, data: bytes, ts: float, emit: Emit) -> None:
        sent = self.state.transmitted.get(self.toxic.name, 0)
        left = max(self.a["bytes"] - sent, 0)
        part = data[:left]
        if part:
            await emit(part, ts)
            self.state.transmitted[self.toxic.name] = sent + len(part)
        if self.a["bytes"] - self.state.transmitted.get(self.toxic.name, 0) <= 0:
            self.link.close_connection(False)


STAGES: dict[str, type[Stage]] = {
    "noop": Stage,
    "latency": Latency,
    "bandwidth": Bandwidth,
    "slow_close": SlowClose,
    "timeout": Timeout,
    "reset_peer": ResetPeer,
    "slicer": Slicer,
    "limit_data": LimitData,
}


def roll(toxic: Toxic) -> bool:
    """Whether this toxic applies to one link (upstream: rand.Float32() < toxicity)."""
    return random.random() < toxic.toxicity


def buffer_bytes(toxic: Toxic) -> int:
    """The capacity of this toxic's inbox on every link (Go's ToxicWrapper.BufferSize)."""
    return LATENCY_BUFFER_BYTES if toxic.type == "latency" else DEFAULT_BUFFER_BYTES


def new_stage(toxic: Toxic, link: LinkControl, state: LinkState) -> Stage:
    if toxic.type not in STAGES:
        raise ApiError("invalid toxic type", 400)
    return STAGES[toxic.type](toxic, link, state)
