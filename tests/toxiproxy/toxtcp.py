"""Small blocking TCP servers for the toxiproxy tests (loopback only)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Callable


class TcpServer:
    """Accepts on 127.0.0.1 and runs ``handle(conn)`` per connection in a thread."""

    def __init__(self, handle: Callable[[socket.socket], None], sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.sock.settimeout(1.0)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self._handle = handle
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            conn.settimeout(10)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self._handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
        except OSError:
            pass
        self._thread.join(2)
        self.sock.close()


def echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(65536):
        conn.sendall(data)


class CountingSink:
    """A server handler that counts bytes until EOF, answers the count, and notes when data came."""

    def __init__(self) -> None:
        self.first = self.last = 0.0

    def handle(self, conn: socket.socket) -> None:
        n = 0
        while data := conn.recv(1 << 20):
            if not n:
                self.first = time.perf_counter()
            n += len(data)
        self.last = time.perf_counter()
        conn.sendall(str(n).encode())


def recv_all(sock: socket.socket, limit: int = 1 << 26) -> bytes:
    """Read until EOF (bounded by ``limit`` bytes and the socket timeout)."""
    parts, total = [], 0
    while total < limit:
        data = sock.recv(65536)
        if not data:
            break
        parts.append(data)
        total += len(data)
    return b"".join(parts)


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])
