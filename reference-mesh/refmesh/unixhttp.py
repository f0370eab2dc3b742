"""Tiny HTTP/JSON over Unix sockets, server and client.

Why Unix sockets: harness <-> component control traffic must never touch
the pod network it measures (DESIGN.md), and file permissions on the
socket decide who may talk to the CA or the control plane.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: A route handler: (method, path, parsed JSON body or raw bytes) -> (status, JSON-able body or str).
Handler = Callable[[str, str, Any], tuple[int, Any]]


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5. A Unix socket's connect() with a timeout
    # (non-blocking underneath) fails at once with EAGAIN (BlockingIOError) when the
    # backlog is full, unlike TCP: eight sidecar injections asking the node agent at once
    # failed bring-ups that way under load.
    request_queue_size = 128


def serve(path: str | Path, handler: Handler, mode: int = 0o600) -> _Server:
    """Serve ``handler`` on the Unix socket ``path`` in a daemon thread; returns the server.

    A stale socket file from a killed run is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_socket():
        path.unlink()

    class _H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _do(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            body: Any = raw
            if raw and "json" in (self.headers.get("Content-Type") or "json"):
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    self._reply(400, {"error": f"body is not JSON: {e}"})
                    return
            try:
                status, out = handler(self.command, self.path, body)
            except Exception as e:  # a bug must answer 500, not hang the caller
                log.exception("handler failed for %s %s", self.command, self.path)
                status, out = 500, {"error": f"{type(e).__name__}: {e}"}
            self._reply(status, out)

        def _reply(self, status: int, out: Any) -> None:
            if isinstance(out, str):
                data, ctype = out.encode(), "text/plain; charset=utf-8"
            else:
                data, ctype = json.dumps(out, indent=1, sort_keys=True).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _do

        def address_string(self) -> str:  # client_address is "" on Unix sockets
            return "unix"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

    srv = _Server(str(path), _H)
    os.chmod(path, mode)
    threading.Thread(target=srv.serve_forever, name=f"http:{path.name}", daemon=True).start()
    return srv


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def request(path: str | Path, method: str, url: str, body: Any = None,
            timeout: float = 10.0) -> tuple[int, bytes]:
    """One HTTP request over the Unix socket ``path``; returns (status, raw body)."""
    conn = _UnixConnection(str(path), timeout)
    try:
        headers = {}
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, url, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def request_json(path: str | Path, method: str, url: str, body: Any = None,
                 timeout: float = 10.0) -> tuple[int, Any]:
    """Like :func:`request`, decoding a JSON answer (a non-JSON answer comes back as text)."""
    status, raw = request(path, method, url, body, timeout)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")
