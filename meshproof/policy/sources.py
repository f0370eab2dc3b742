"""Read a policy file or standard input, bounded, before any parsing.

Why bounded: ``-f /dev/zero`` never ends and a 2 GB file would be parsed
into many times its size. At most ``MAX_FILE_BYTES`` + 1 bytes are read;
more is an error that says so. Why bytes: libyaml reads UTF-8 (or UTF-16
with a BOM) itself, so the text is never decoded into a second copy.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import IO, AnyStr

from meshproof.policy.errors import Location, Problem
from meshproof.policy.limits import MAX_FILE_BYTES

#: The path that means standard input, as for kubectl.
STDIN = "-"
STDIN_NAME = "<stdin>"


def read_stream(stream: IO[AnyStr], source: str) -> AnyStr | Problem:
    """At most ``MAX_FILE_BYTES`` (characters, for a text stream) of ``stream``,
    or the problem why not."""
    chunks: list[AnyStr] = []
    size = 0
    while size <= MAX_FILE_BYTES:
        chunk = stream.read(min(1 << 20, MAX_FILE_BYTES + 1 - size))
        if not chunk:
            return chunk[:0].join(chunks) if chunks else chunk
        chunks.append(chunk)
        size += len(chunk)
    return Problem(Location(source, 0), "", f"is larger than {MAX_FILE_BYTES // 2**20} MiB",
                   "split the policy into several files (one load may take several -f)")


def read_source(path: str | Path) -> tuple[str, bytes | Problem]:
    """``(name for messages, content or problem)`` of a path, ``-`` meaning stdin."""
    if str(path) == STDIN:
        return STDIN_NAME, read_stream(sys.stdin.buffer, STDIN_NAME)
    name = str(path)
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if stat.S_ISDIR(mode):
                return name, Problem(Location(name, 0), "", "is a directory",
                                     "name the YAML files in it (e.g. -f dir/*.yaml)")
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                return name, Problem(Location(name, 0), "", "is a device, not a file",
                                     "name a policy YAML file, or - for standard input")
            return name, read_stream(f, name)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)[:200]
        return name, Problem(Location(name, 0), "", f"cannot read: {reason}",
                             "check the path and its permissions")
