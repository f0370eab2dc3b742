"""Client layer over toxiproxy-python, plus starting and stopping a toxiproxy server.

toxiproxy-python 0.1.1 keeps its server address in class attributes, sends
requests without timeouts (a hung server hangs the test run) and cannot
update a toxic or call /populate. ``ToxiproxyClient`` adds those on the same
API; ``python_client`` hands out a configured toxiproxy-python object.

``start_server`` prefers a real ``toxiproxy-server`` on PATH, else runs
meshproof's own (in a thread, or a subprocess to keep it off the test's GIL).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import requests
import toxiproxy
from toxiproxy.api import APIConsumer

from meshproof.errors import MeshproofError
from meshproof.toxiproxy.proxy import NetnsFor
from meshproof.toxiproxy.server import ToxiproxyServer

DEFAULT_TIMEOUT_S = 5.0
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class ToxiproxyError(MeshproofError):
    """The toxiproxy API answered with an error (status and upstream message kept)."""

    def __init__(self, status: int, message: str, hint: str = "") -> None:
        super().__init__(f"toxiproxy API {status}: {message}", hint)
        self.status = status
        self.message = message


def _hint(status: int) -> str:
    return {
        404: "list what exists with GET /proxies",
        409: "pick another name or delete the existing one first",
        400: "check the JSON body against docs/toxiproxy.md",
    }.get(status, "")


class ToxiproxyClient:
    """Every toxiproxy v2 endpoint with request timeouts; errors raise ``ToxiproxyError``."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            resp = self._http.request(method, self.url + path, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ToxiproxyError(
                0, f"{method} {path} failed: {exc}", f"is a toxiproxy server listening at {self.url}?"
            ) from exc
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error", resp.text)
            except ValueError:
                message = resp.text.strip()
            raise ToxiproxyError(resp.status_code, message, _hint(resp.status_code))
        return resp.json() if resp.content.strip() else None

    def version(self) -> str:
        return str(self._call("GET", "/version")["version"])

    def proxies(self) -> dict[str, dict[str, Any]]:
        return dict(self._call("GET", "/proxies"))

    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True) -> dict[str, Any]:
        return dict(self._call("POST", "/proxies", {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}))

    def get_proxy(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/proxies/{name}"))

    def update_proxy(self, name: str, **fields: Any) -> dict[str, Any]:
        return dict(self._call("PATCH", f"/proxies/{name}", fields))

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def populate(self, proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return list(self._call("POST", "/populate", proxies)["proxies"])

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/proxies/{proxy}/toxics"))

    def add_toxic(
        self,
        proxy: str,
        type_: str,
        attributes: dict[str, int] | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
    ) -> dict[str, Any]:
        body = {"type": type_, "stream": stream, "toxicity": toxicity, "attributes": attributes or {}}
        if name:
            body["name"] = name
        return dict(self._call("POST", f"/proxies/{proxy}/toxics", body))

    def get_toxic(self, proxy: str, toxic: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/proxies/{proxy}/toxics/{toxic}"))

    def update_toxic(
        self, proxy: str, toxic: str, attributes: dict[str, int] | None = None, toxicity: float | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        return dict(self._call("PATCH", f"/proxies/{proxy}/toxics/{toxic}", body))

    def remove_toxic(self, proxy: str, toxic: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{toxic}")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def delete_all(self) -> None:
        for name in self.proxies():
            self.delete_proxy(name)


_python_timeout = [DEFAULT_TIMEOUT_S]


def _with_timeout(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(cls: Any, url: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", _python_timeout[0])
        return fn(url, *args, **kwargs)

    call.__meshproof_timeout__ = True  # type: ignore[attr-defined]
    return classmethod(call)  # type: ignore[return-value]


def python_client(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> toxiproxy.Toxiproxy:
    """A toxiproxy-python client aimed at ``url``, whose requests time out.

    toxiproxy-python holds host and port on its APIConsumer class, so this
    points every toxiproxy-python object in the process at ``url``.
    """
    parsed = requests.utils.urlparse(url)
    APIConsumer.host = parsed.hostname
    APIConsumer.port = parsed.port or 8474
    _python_timeout[0] = timeout
    for verb in ("get", "post", "delete"):
        current = getattr(APIConsumer, verb)
        if not getattr(current, "__meshproof_timeout__", False):
            setattr(APIConsumer, verb, _with_timeout(current))
    return toxiproxy.Toxiproxy()


# ---------------------------------------------------------------- launcher


@dataclass
class RunningServer:
    """A started toxiproxy server; ``stop()`` is idempotent and bounded in time."""

    url: str
    kind: str  # "real", "builtin-thread" or "builtin-subprocess"
    _stop: Callable[[], None] = field(repr=False)
    server: ToxiproxyServer | None = None  # set for builtin-thread
    pid: int | None = None

    def stop(self) -> None:
        stop, self._stop = self._stop, lambda: None
        stop()

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for _ in range(int(START_TIMEOUT_S / 0.05) + 1):  # bounded: count and deadline
        if proc is not None and proc.poll() is not None:
            raise MeshproofError(f"toxiproxy server exited with {proc.returncode} at start", "run it by hand to see why")
        try:
            if requests.get(url + "/version", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise MeshproofError(f"toxiproxy server at {url} did not answer within {START_TIMEOUT_S:.0f} s", "check the port is free")


def _stop_proc(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


def _start_real(binary: str, host: str) -> RunningServer:
    last: Exception | None = None
    for _ in range(3):  # a free port can be taken between probe and bind: retry a little
        port = _free_port(host)
        proc = subprocess.Popen([binary, "-host", host, "-port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://{host}:{port}"
        try:
            _wait_up(url, proc)
        except MeshproofError as exc:
            _stop_proc(proc)
            last = exc
            continue
        return RunningServer(url, "real", lambda: _stop_proc(proc), pid=proc.pid)
    raise MeshproofError(f"toxiproxy-server failed to start 3 times: {last}", "run toxiproxy-server by hand")


def _start_subprocess(host: str) -> RunningServer:
    cmd = [sys.executable, "-m", "meshproof.toxiproxy", "--host", host, "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()  # "toxiproxy API listening on URL"
    if not line.startswith("toxiproxy API listening on "):
        _stop_proc(proc)
        raise MeshproofError(f"meshproof toxiproxy did not start: {line!r}", "run python -m meshproof.toxiproxy by hand")
    url = line.rsplit(" ", 1)[1]
    _wait_up(url, proc)
    return RunningServer(url, "builtin-subprocess", lambda: _stop_proc(proc), pid=proc.pid)


def start_server(
    mode: str | None = None, host: str = "127.0.0.1", netns_for: NetnsFor | None = None
) -> RunningServer:
    """Start a toxiproxy server on a free port and return it (use as a context manager).

    mode: "auto" (real toxiproxy-server if on PATH, else built-in thread),
    "real", "thread" or "subprocess"; default from MESHPROOF_TOXIPROXY or
    "auto". ``netns_for`` needs the built-in server in a thread.
    """
    mode = mode or os.environ.get("MESHPROOF_TOXIPROXY", "auto")
    binary = shutil.which("toxiproxy-server")
    if netns_for is not None and mode not in ("auto", "thread"):
        raise MeshproofError(f"netns placement needs the built-in server in a thread, not mode {mode!r}", "use mode='thread'")
    if mode == "real" or (mode == "auto" and binary and netns_for is None):
        if not binary:
            raise MeshproofError("toxiproxy-server is not on PATH", "install it, or use mode='thread'")
        return _start_real(binary, host)
    if mode == "subprocess":
        return _start_subprocess(host)
    if mode not in ("auto", "thread"):
        raise MeshproofError(f"unknown toxiproxy mode {mode!r}", "use auto, real, thread or subprocess")
    server = ToxiproxyServer(host, 0, netns_for)
    url = server.start_in_thread()
    return RunningServer(url, "builtin-thread", server.stop_thread, server=server)
