"""Where meshproof keeps things: run state, reports, shipped fixtures."""

from __future__ import annotations

import os
import re
from pathlib import Path

#: The repository (or installed source tree) root: fixtures/ lives beside meshproof/.
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
WORKLOAD_PY = FIXTURES / "app" / "workload.py"
PROBE_PY = FIXTURES / "probe" / "probe.py"



def _instance() -> str:
    """``MESHPROOF_INSTANCE``: a second (third, ...) lab on the same machine.

    Empty for the default lab. Each instance has its own netns prefix, run dir
    and lock, so two runs (two CI jobs or developers sharing a box) never see,
    lock or sweep each other's lab. Short and plain because it becomes part of
    every namespace name.
    """
    name = os.environ.get("MESHPROOF_INSTANCE", "")
    if name and not re.fullmatch(r"[a-z0-9]{1,8}", name):
        raise SystemExit(f"meshproof: MESHPROOF_INSTANCE={name!r} is not 1-8 characters of "
                         "a-z and 0-9; unset it for the default lab")
    return name


INSTANCE = _instance()

#: Run state lives here (not in the clone), so any clone on this machine finds
#: a killed run's leftovers. Override only for tests of the state logic itself.
RUN_DIR = Path(os.environ.get("MESHPROOF_RUN_DIR",
                              f"/run/meshproof-{INSTANCE}" if INSTANCE else "/run/meshproof"))

#: Reports (git-ignored), relative to the working directory like pytest's.
REPORTS = Path(os.environ.get("MESHPROOF_REPORTS", "reports"))

#: Pod processes run as unprivileged uids and must reach the interpreter and
#: the fixture files: Debian's python3 lives outside /root (0700), and the
#: fixtures are staged under RUN_DIR when the clone is not world-readable.
POD_PYTHON = os.environ.get("MESHPROOF_POD_PYTHON", "/usr/bin/python3")
