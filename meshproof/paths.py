"""Where meshproof keeps things: run state, reports, shipped fixtures."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository (or installed source tree) root: fixtures/ lives beside meshproof/.
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
WORKLOAD_PY = FIXTURES / "app" / "workload.py"
PROBE_PY = FIXTURES / "probe" / "probe.py"

#: Run state lives here (not in the clone), so any clone on this machine finds
#: a killed run's leftovers. Override only for tests of the state logic itself.
RUN_DIR = Path(os.environ.get("MESHPROOF_RUN_DIR", "/run/meshproof"))

#: Reports (git-ignored), relative to the working directory like pytest's.
REPORTS = Path(os.environ.get("MESHPROOF_REPORTS", "reports"))

#: Pod processes run as unprivileged uids and must reach the interpreter and
#: the fixture files: Debian's python3 lives outside /root (0700), and the
#: fixtures are staged under RUN_DIR when the clone is not world-readable.
POD_PYTHON = os.environ.get("MESHPROOF_POD_PYTHON", "/usr/bin/python3")
