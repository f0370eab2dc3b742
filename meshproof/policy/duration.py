"""Durations as Gateway API writes them (GEP-2257), parsed strictly.

``300ms``, ``2s``, ``1m30s``, ``1h``: whole numbers (1 to 5 digits) with a
unit h, m, s or ms, units in descending order, each at most once. No
fractions, signs, spaces or bare numbers: ``2`` could mean seconds or
milliseconds, and a policy that guesses wrong makes a timeout test pass for
the wrong reason.
"""

from __future__ import annotations

import re

from meshproof.policy.errors import FieldError
from meshproof.policy.preview import preview
from meshproof.policy.preview import text as quoted

_DURATION = re.compile(r"(?:(\d{1,5})h)?(?:(\d{1,5})m)?(?:(\d{1,5})s)?(?:(\d{1,5})ms)?")
_UNIT_MS = (3_600_000, 60_000, 1_000, 1)


def parse_duration_ms(text: object, field: str) -> int:
    """Milliseconds of a duration string; ``FieldError`` at ``field`` if malformed."""
    if not isinstance(text, str):
        raise FieldError(field, f"must be a duration string such as \"300ms\" or \"2s\", "
                                f"got {preview(text)}", "write the unit: 300ms, 2s, 1m30s")
    m = _DURATION.fullmatch(text)
    if not text or m is None:
        raise FieldError(field, f"{quoted(text)} is not a duration",
                         "whole numbers with units h, m, s, ms in that order, e.g. "
                         "300ms, 2s, 1m30s (no fractions or spaces)")
    return sum(int(v) * unit for v, unit in zip(m.groups(), _UNIT_MS) if v)
