"""One JSON request and one JSON answer, each a line, over a Unix socket.

How the harness talks to everything it runs (the lab daemon, probe agents,
load generators): control traffic stays off the pod network it measures.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from meshproof.errors import TargetError


def exchange(path: str | Path, message: dict[str, Any], timeout: float, who: str) -> Any:
    """Send ``message``, return the decoded answer line; ``who`` names the peer in errors."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(message).encode() + b"\n")
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise TargetError(f"{who} closed the connection")
            buf += chunk
    return json.loads(buf)
