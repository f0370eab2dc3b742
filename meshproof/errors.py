"""Errors that tell the user what is wrong and what to do next.

Every error a user can cause (bad input, missing root, a missing binary, an
unreachable target) is a ``MeshproofError``: the CLI prints ``what`` and
``hint`` and exits with ``exit_code`` instead of a traceback.
"""

from __future__ import annotations


class MeshproofError(Exception):
    """A failure the user can act on."""

    exit_code = 2

    def __init__(self, what: str, hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.what}\n  hint: {self.hint}" if self.hint else self.what


class NotRoot(MeshproofError):
    """The local target needs root (network namespaces, iptables)."""


class MissingBinary(MeshproofError):
    """A program the target needs is not installed."""


class UnknownName(MeshproofError):
    """A workload, pod, service, namespace, mesh or target that does not exist."""


class ConfigError(MeshproofError):
    """Malformed user input (policy YAML, flags)."""


class TargetError(MeshproofError):
    """The target could not do what was asked (port clash, process died, ...)."""
