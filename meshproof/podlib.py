"""The pure-Python libraries the sample app and the probe need inside a pod.

HTTP/2 and gRPC in ``fixtures/app/workload.py`` and ``fixtures/probe/probe.py``
use ``h2`` (with ``hpack`` and ``hyperframe``): maintained, pure Python, pinned
in requirements.lock. A pod runs a stock interpreter (the lab's
``/usr/bin/python3``, a cluster's Python image), so the targets ship these
packages' sources beside the two scripts, in ``pylib/``, which both scripts put
first on ``sys.path``. Found through the installed distribution, never imported
here (the harness need not load them).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from meshproof import paths
from meshproof.errors import ConfigError

#: Packages shipped to pods, in dependency order.
POD_PACKAGES = ("h2", "hpack", "hyperframe")
#: Where, beside workload.py and probe.py, the packages go.
PYLIB = "pylib"
#: The project's own module both scripts import (the echo gRPC wire format): one copy.
OWN_MODULES = (paths.FIXTURES / "grpcwire.py",)


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the pod library {name!r} is not installed in this interpreter",
                          "run 'make setup' (requirements.lock pins h2, hpack, hyperframe)")
    return Path(next(iter(spec.submodule_search_locations)))


def files() -> dict[str, str]:
    """``{"h2/connection.py": source, ..., "grpcwire.py": source}``: every module of every
    pod package, and the project's own shared module."""
    out: dict[str, str] = {}
    for name in POD_PACKAGES:
        root = package_dir(name)
        for f in sorted(root.rglob("*.py")):
            if "__pycache__" not in f.parts:
                out[f"{name}/{f.relative_to(root).as_posix()}"] = f.read_text()
    for f in OWN_MODULES:
        out[f.name] = f.read_text()
    return out


def stage(dest: Path) -> int:
    """Write :func:`files` under ``dest/pylib`` (world-readable: every pod uid imports them);
    returns how many files."""
    written = files()
    for rel, text in written.items():
        f = dest / PYLIB / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        f.chmod(0o644)
    for d in [dest / PYLIB, *(p for p in (dest / PYLIB).rglob("*") if p.is_dir())]:
        d.chmod(0o755)
    return len(written)
