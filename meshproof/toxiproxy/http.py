"""A minimal HTTP/1.1 server on asyncio streams, just enough for a JSON API.

Stdlib only, so the toxiproxy server runs from a stock Python. It handles
Content-Length and chunked request bodies, keep-alive (HTTP/1.1 default,
HTTP/1.0 opt-in), bounded header and body sizes, and idle/read timeouts, and
always answers with a Content-Length.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Awaitable, Callable

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024
READ_TIMEOUT_S = 15.0
IDLE_TIMEOUT_S = 60.0

Handler = Callable[[str, str, dict[str, str], bytes], Awaitable["tuple[int, list[tuple[str, str]], bytes]"]]


class _BadRequest(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _response(status: int, headers: list[tuple[str, str]], body: bytes, keep_alive: bool) -> bytes:
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _BadRequest(400, "bad chunk size") from exc
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BadRequest(413, "request body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is None:
        return b""
    if not length.isdigit():
        raise _BadRequest(400, "bad Content-Length")
    if int(length) > MAX_BODY_BYTES:
        raise _BadRequest(413, "request body too large")
    return await reader.readexactly(int(length))


async def _answer_expect(writer: asyncio.StreamWriter, version: str, headers: dict[str, str]) -> bool:
    """Go's net/http on ``Expect``: 100 Continue before a body is read, 417 (and close) for anything else.

    Without the interim answer, curl and other clients wait a second for it
    before they send the body. False: the connection is done.
    """
    expect = headers.get("expect")
    if expect is None:
        return True
    if expect.lower() == "100-continue":
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if version == "HTTP/1.1" and has_body:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        return True
    writer.write(_response(417, [], b"", False))
    await writer.drain()
    return False


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, str, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, "malformed header")
        headers[key.strip().lower()] = value.strip()
    return parts[0], parts[1], parts[2], headers


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler) -> None:
    """Answer requests on one connection until it closes, idles out or errs."""
    try:
        first = True
        while True:
            timeout = READ_TIMEOUT_S if first else IDLE_TIMEOUT_S
            try:
                method, target, version, headers = await asyncio.wait_for(_read_request(reader), timeout)
                if not await _answer_expect(writer, version, headers):
                    return
                body = await asyncio.wait_for(_read_body(reader, headers), READ_TIMEOUT_S)
            except _BadRequest as exc:
                writer.write(_response(exc.status, [("Content-Type", "text/plain")], f"{exc}\n".encode(), False))
                await writer.drain()
                return
            except asyncio.LimitOverrunError:
                writer.write(_response(431, [], b"", False))
                await writer.drain()
                return
            first = False
            conn = headers.get("connection", "").lower()
            keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
            status, out_headers, out_body = await handler(method, target, headers, body)
            writer.write(_response(status, out_headers, out_body, keep))
            await writer.drain()
            if not keep:
                return
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
        return
    finally:
        writer.close()


class HttpServer:
    """Owns the listener and every open API connection, so stop() leaves nothing behind."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._tasks: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._on_client, host, port, limit=MAX_HEADER_BYTES)
        addr = self._server.sockets[0].getsockname()
        return addr[0], addr[1]

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks[task] = writer
        try:
            await serve_connection(reader, writer, self._handler)
        finally:
            self._tasks.pop(task, None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._tasks.values()):
            writer.transport.abort()  # the reader then ends with IncompleteReadError
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
