"""JSON lines over a Unix socket: how the harness talks to the lab daemon.

One request per line ``{"method": ..., "args": {...}}``, one answer per line
``{"ok": value}`` or ``{"error": {"type", "what", "hint"}}``. Errors the user
can act on cross the socket as the same ``MeshproofError`` subclass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshproof import errors
from meshproof.jsonline import exchange

_ERRORS = {c.__name__: c for c in (errors.MeshproofError, errors.NotRoot, errors.MissingBinary,
                                   errors.UnknownName, errors.ConfigError, errors.TargetError)}


def encode_error(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, errors.MeshproofError):
        return {"type": type(exc).__name__, "what": exc.what, "hint": exc.hint}
    return {"type": "TargetError", "what": f"{type(exc).__name__}: {exc}", "hint": ""}


def raise_error(err: dict[str, str]) -> None:
    cls = _ERRORS.get(err.get("type", ""), errors.TargetError)
    raise cls(err.get("what", "unknown error"), err.get("hint", ""))


def call(sock_path: Path, method: str, args: dict[str, Any] | None = None,
         timeout: float = 120.0) -> Any:
    try:
        answer = exchange(sock_path, {"method": method, "args": args or {}}, timeout,
                          "the lab daemon")
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise errors.TargetError(f"the lab is not running (no daemon at {sock_path})",
                                 "start it with 'meshproof up'") from exc
    if "error" in answer:
        raise_error(answer["error"])
    return answer["ok"]
