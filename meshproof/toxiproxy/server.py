"""meshproof's toxiproxy server: the v2 HTTP API plus the proxies, on one asyncio loop.

Used when no real ``toxiproxy-server`` binary is installed. ``netns_for``
places proxies in pod network namespaces while the API stays on the host
loopback: it maps a listen or upstream host to a netns path (None: the
host netns).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Callable

from meshproof.toxiproxy.api import Api
from meshproof.toxiproxy.http import HttpServer
from meshproof.toxiproxy.proxy import NetnsFor

START_TIMEOUT_S = 10.0


class ToxiproxyServer:
    """Start with ``await start()`` on a loop you own, or ``start_in_thread()`` from sync code."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8474, netns_for: NetnsFor | None = None) -> None:
        self.host, self.port = host, port
        self.api = Api(netns_for)
        self._http = HttpServer(self._handle)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
        resp = await self.api.handle(method, target, headers, body)
        return resp.status, resp.headers, resp.body

    async def start(self) -> str:
        """Listen for the API; port 0 picks a free port. Returns the API URL."""
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self.host, self.port = await self._http.start(self.host, self.port)
        return self.url

    async def stop(self) -> None:
        """Close the API listener and its connections, then every proxy and its connections."""
        await self._http.stop()
        await self.api.close()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        if self._stopped is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    # ---- sync helpers for tests and the launcher
    def start_in_thread(self) -> str:
        """Run the server on its own loop in a daemon thread; returns the API URL."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            async def main() -> None:
                try:
                    await self.start()
                except BaseException as exc:  # reported to the caller below
                    failure.append(exc)
                    ready.set()
                    return
                ready.set()
                await self.serve_forever()

            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="toxiproxy-server", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError("toxiproxy server did not start within 10 s")
        if failure:
            raise failure[0]
        return self.url

    def call(self, fn: Callable[[], object], timeout: float = 10.0) -> object:
        """Run ``fn`` on the server loop (for tests that inspect live state)."""
        assert self._loop is not None

        async def wrap() -> object:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrap(), self._loop).result(timeout)

    def stop_thread(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout)
        self._thread.join(timeout)
        self._thread = None
