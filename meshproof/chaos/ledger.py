"""The fault ledger: every fault an experiment injects, written *before* it is injected.

A runner killed mid-fault (SIGKILL, power) cannot run its rollbacks; the
ledger (``/run/meshproof/chaos/ledger.json``) lets the next run, and
``meshproof down``'s sweep, undo what it left: toxiproxy processes and their
capture redirects, block rules, stopped components, killed pods, intents.
Entries are removed once their fault is undone.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from meshproof import paths

LEDGER_DIR = paths.RUN_DIR / "chaos"
LEDGER = LEDGER_DIR / "ledger.json"


def _read() -> list[dict[str, Any]]:
    try:
        return list(json.loads(LEDGER.read_text()))
    except (OSError, ValueError):
        return []


def _write(entries: list[dict[str, Any]]) -> None:
    LEDGER_DIR.mkdir(parents=True, exist_ok=True)
    tmp = LEDGER.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entries, indent=1))
    tmp.replace(LEDGER)


def entries() -> list[dict[str, Any]]:
    return _read()


def record(kind: str, **args: Any) -> str:
    """Write the fault down (before injecting it); returns its id."""
    eid = uuid.uuid4().hex[:10]
    items = _read()
    items.append({"id": eid, "kind": kind, "args": args, "at": time.time(), "pid": os.getpid()})
    _write(items)
    return eid


def find(kind: str, **args: Any) -> list[dict[str, Any]]:
    return [e for e in _read() if e["kind"] == kind
            and all(e["args"].get(k) == v for k, v in args.items())]


def clear(eid: str) -> None:
    items = [e for e in _read() if e["id"] != eid]
    if items:
        _write(items)
    else:
        LEDGER.unlink(missing_ok=True)


def undo_all(reason: str = "") -> list[str]:
    """Undo every recorded fault on the running lab (if any); returns what was undone.
    Without a lab the faults died with it: the ledger is just dropped."""
    items = _read()
    if not items:
        return []
    from meshproof.chaos import faults

    done: list[str] = []
    for e in reversed(items):
        try:
            faults.undo(e)
            done.append(f"{e['kind']} {json.dumps(e['args'], sort_keys=True)}")
        except Exception as exc:  # keep going: one stuck fault must not keep the others
            done.append(f"{e['kind']} (not undone: {exc})")
        clear(e["id"])
    return done


def path() -> Path:
    return LEDGER
