"""Running host commands (ip, iptables, tcpdump) with errors a user can act on."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from meshproof.errors import MissingBinary, NotRoot, TargetError

#: Debian package that provides each binary the local target runs.
PACKAGES = {
    "ip": "iproute2", "iptables-restore": "iptables", "iptables": "iptables",
    "tcpdump": "tcpdump", "tshark": "tshark", "setpriv": "util-linux",
    "nsenter": "util-linux",
}


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRoot(
            "the local target needs root: it creates network namespaces and iptables rules",
            "run as root, e.g. 'sudo make conformance' or 'sudo .venv/bin/meshproof up'",
        )


def require_binaries(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pkgs = sorted({PACKAGES.get(n, n) for n in missing})
        raise MissingBinary(
            f"missing program(s): {', '.join(missing)}",
            f"run 'make setup' as root, or: apt-get install -y {' '.join(pkgs)}",
        )


def run(argv: Sequence[str], *, netns: str | None = None, input: str | None = None,
        check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (inside ``netns`` when given); raise TargetError with its stderr."""
    full = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    try:
        cp = subprocess.run(full, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"command timed out after {timeout}s: {' '.join(full)}") from exc
    if check and cp.returncode != 0:
        raise TargetError(f"command failed ({cp.returncode}): {' '.join(full)}\n"
                          f"{cp.stderr.strip()}")
    return cp
