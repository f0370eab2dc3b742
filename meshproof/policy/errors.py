"""Where a policy error is, so the user can go straight to the line to fix.

A policy error names the file, the document within it (1-based, as an
editor counts ``---`` sections), the resource (``Kind namespace/name``) and
the field path (``spec.backends[1].weight``; list indexes count from 0, as
kubectl's do). Loading collects every error of a load before raising, so one
run shows everything that is wrong instead of one error per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshproof.errors import ConfigError
from meshproof.policy.limits import MAX_PROBLEMS_SHOWN


class FieldError(Exception):
    """One bad field inside a document; the loader adds file/document/resource."""

    def __init__(self, field: str, what: str, hint: str = "") -> None:
        super().__init__(f"{field}: {what}")
        self.field = field
        self.what = what
        self.hint = hint


@dataclass(frozen=True)
class Location:
    """A document in a file, and the resource it declares once that is known."""

    file: str
    document: int  # 1-based
    kind: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def resource(self) -> str:
        """``Kind namespace/name`` (or as much of it as the document gave)."""
        ref = "/".join(p for p in (self.namespace, self.name) if p)
        return " ".join(p for p in (self.kind, ref) if p)

    def __str__(self) -> str:
        where = f"{self.file}: document {self.document}"
        return f"{where} ({self.resource})" if self.resource else where


@dataclass(frozen=True)
class Problem:
    """One located error: what is wrong, where, and what to do about it."""

    location: Location
    field: str
    what: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.field}: {self.what}" if self.field else \
            f"{self.location}: {self.what}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class PolicyError(ConfigError):
    """A policy load failed; nothing of it may be applied.

    ``problems`` holds the located errors kept (the first ``MAX_PROBLEMS_KEPT``
    of a load), ``total`` how many were found. The message lists the first
    ``MAX_PROBLEMS_SHOWN``, the first one first, and says how many more there
    are: 200,000 broken documents must not print 30 MB (the CLI prints the
    message and exits 2).
    """

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = list(problems)
        self.total = max(total or 0, len(self.problems))
        first = self.problems[0]
        what = str(first).split("\n    hint: ")[0]
        shown = [str(p) for p in self.problems[1:MAX_PROBLEMS_SHOWN]]
        if shown:
            what += f"\n  and {self.total - 1} more:\n  " + "\n  ".join(shown)
        if self.total > MAX_PROBLEMS_SHOWN:
            what += (f"\n  ... {self.total - MAX_PROBLEMS_SHOWN} more not shown "
                     f"({self.total} problems in all)")
        super().__init__(what, first.hint or "fix the field named above; nothing was applied")
