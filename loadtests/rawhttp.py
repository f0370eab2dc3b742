"""A lean HTTP/1.1 keep-alive client for Locust users, reporting through Locust's events.

Why not FastHttpUser: measured on this 2-vCPU VM, FastHttpSession costs about
400 us of CPU per request (geventhttpclient's parser, header objects, the
response wrapper), so at 1000 rps the generator's one gevent thread is half
busy and its send lateness reached p99 3.4 ms. This client does one
``sendall`` and reads one response (Content-Length or chunked) per request,
and fires the same ``request`` event FastHttpSession fires, with the user's
context, so Locust listeners see it unchanged.
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlsplit


class HTTPStatusError(Exception):
    """A response with a 4xx/5xx status: counted as an error, like Locust does."""


class RawSession:
    def __init__(self, environment: Any, base_url: str, user: Any, timeout_s: float) -> None:
        u = urlsplit(base_url)
        self.env = environment
        self.user = user
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 80
        self.host_header = u.netloc
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buf.clear()

    def _connect(self) -> socket.socket:
        s = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(self.timeout_s)
        self.buf.clear()
        return s

    def _fill(self, s: socket.socket) -> None:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by peer")
        self.buf += chunk

    def _read_response(self, s: socket.socket) -> tuple[int, int, bool]:
        """(status, body length, keep-alive) of one response; leaves extra bytes buffered."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill(s)
        head = bytes(self.buf[:end]).decode("latin-1").lower()
        del self.buf[:end + 4]
        lines = head.split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = dict(ln.split(":", 1) for ln in lines[1:] if ":" in ln)
        keep = fields.get("connection", "").strip() != "close"
        if "content-length" in fields:
            n = int(fields["content-length"])
            while len(self.buf) < n:
                self._fill(s)
            del self.buf[:n]
            return status, n, keep
        if fields.get("transfer-encoding", "").strip() == "chunked":
            return status, self._read_chunked(s), keep
        while True:  # body until close
            try:
                self._fill(s)
            except ConnectionError:
                n = len(self.buf)
                self.buf.clear()
                return status, n, False

    def _read_chunked(self, s: socket.socket) -> int:
        total = 0
        while True:
            while (eol := self.buf.find(b"\r\n")) < 0:
                self._fill(s)
            size = int(bytes(self.buf[:eol]).split(b";")[0], 16)
            need = eol + 2 + size + 2
            while len(self.buf) < need:
                self._fill(s)
            del self.buf[:need]
            total += size
            if size == 0:
                return total

    def request(self, method: str, path: str, body: bytes = b"") -> None:
        start = time.perf_counter()
        exc: BaseException | None = None
        length = 0
        head = (f"{method} {path} HTTP/1.1\r\nhost: {self.host_header}\r\n"
                f"content-length: {len(body)}\r\n\r\n").encode() if body else \
            f"{method} {path} HTTP/1.1\r\nhost: {self.host_header}\r\n\r\n".encode()
        try:
            if self.sock is None:
                self.sock = self._connect()
            self.sock.sendall(head + body)
            status, length, keep = self._read_response(self.sock)
            if not keep:
                self.close()
            if status >= 400:
                exc = HTTPStatusError(f"HTTP {status}")
        except Exception as e:  # noqa: BLE001 - every failure is a counted error
            exc = e
            self.close()
        self.env.events.request.fire(
            request_type=method, name=path, response_time=(time.perf_counter() - start) * 1000,
            response_length=length, exception=exc, context=self.user.context(),
            response=None, url=f"http://{self.host_header}{path}", start_time=start)
