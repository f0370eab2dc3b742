"""The mesh adapter interface (DESIGN.md): how a test drives any mesh.

A test states an intent; the adapter turns it into the mesh's own resources
(``apply``), waits until the mesh has programmed it (``wait_programmed``),
and on failure hands over evidence (config dumps, stats, logs).
"""

from __future__ import annotations

from typing import Any, Protocol

from meshproof.intent import Intent


class MeshAdapter(Protocol):
    name: str

    def claims(self) -> frozenset[str]: ...
    def apply(self, intent: Intent) -> int: ...
    def wait_programmed(self, version: int, timeout: float = 10.0) -> float: ...
    def remove(self, intent: Intent) -> int: ...
    def evidence(self, pods: list[str]) -> dict[str, Any]: ...
