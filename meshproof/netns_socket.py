"""Create sockets inside another Linux network namespace.

A socket belongs to the network namespace its creator thread was in when it
was created, and keeps it for life. So a process can keep its control
sockets (an HTTP API on the host loopback) while opening data sockets inside
pod namespaces: one worker thread enters the pod netns with setns(2), creates
the socket, and switches back. The event loop thread never changes netns.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from meshproof.errors import MeshproofError

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


class NetnsError(MeshproofError):
    """Entering or leaving a network namespace failed."""


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(
            f"setns({what}) failed: {os.strerror(err)}",
            "run as root (CAP_SYS_ADMIN) and check the netns path exists (ip netns list)",
        )


def _create_in(netns_path: str, family: int, type_: int, proto: int) -> socket.socket:
    """Runs on the worker thread: enter, create, leave."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise NetnsError(
                f"cannot open netns {netns_path}: {exc.strerror}",
                "create it first (ip netns add NAME) or pass None for the host netns",
            ) from exc
        try:
            _setns(target, netns_path)
        finally:
            os.close(target)
        try:
            return socket.socket(family, type_, proto)
        finally:
            # If this fails the thread is unusable: _run() drops the executor.
            _setns(home, "back to the original netns")
    finally:
        os.close(home)


def _run(netns_path: str, family: int, type_: int, proto: int) -> socket.socket:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns-socket")
        executor = _executor
    try:
        return executor.submit(_create_in, netns_path, family, type_, proto).result(timeout=10)
    except NetnsError as exc:
        if "back to the original" in exc.what:
            with _lock:
                if _executor is executor:
                    _executor = None
            executor.shutdown(wait=False)
        raise


def socket_in_netns(
    netns_path: str | None,
    family: int = socket.AF_INET,
    type_: int = socket.SOCK_STREAM,
    proto: int = 0,
) -> socket.socket:
    """A new socket living in ``netns_path`` (None: the caller's own netns)."""
    if netns_path is None:
        return socket.socket(family, type_, proto)
    return _run(netns_path, family, type_, proto)


def current_netns_inode() -> int:
    """Inode of this thread's netns: lets tests prove which netns a thread is in."""
    return os.stat("/proc/thread-self/ns/net").st_ino
