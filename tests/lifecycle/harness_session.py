"""A real pytest session for the lifecycle tests to SIGKILL: not collected on its own.

``test_owner_death.py`` runs ``pytest tests/lifecycle/harness_session.py -s``
with ``MESHPROOF_HARNESS_MODE``:

- ``checks``: hold the plugin's lab and send probes until killed;
- ``teardown``: return at once, so the session's teardown (``stop_lab``) runs;
- ``probe``: the next run: a quick probe through the new lab must pass.

It prints ``HARNESS <event>`` lines so the killer knows where it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from meshproof.targets.local.client import LocalTarget

URL = "http://productpage/"
SOURCE = "bookinfo/client-0"


def say(event: str) -> None:
    print(f"HARNESS {event}", flush=True)


def probe(n: int) -> list[int | None]:
    """Statuses of ``n`` requests through the mesh, via the CLI (the stable surface)."""
    cp = subprocess.run([sys.executable, "-m", "meshproof.cli", "probe", SOURCE, URL, "-n",
                         str(n), "--json"], capture_output=True, text=True, timeout=60)
    assert cp.returncode in (0, 1), cp.stderr
    return [r["status"] for r in json.loads(cp.stdout)["results"]]


def test_hold_the_lab(lab: LocalTarget) -> None:
    mode = os.environ.get("MESHPROOF_HARNESS_MODE", "probe")
    say(f"up {mode}")
    if mode == "checks":
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            say("checking")
            assert probe(5) == [200] * 5
        raise AssertionError("nobody killed the harness within 120 s")
    if mode == "probe":
        assert probe(20) == [200] * 20
        say("probed")
    say("done")
