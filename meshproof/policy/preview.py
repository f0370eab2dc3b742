"""Describe a value in an error message without expanding it.

A YAML alias bomb is a few KB of text standing for billions of values; the
parsed value shares its pieces, so it is small in memory until something
walks it. ``repr()`` walks it. Error messages therefore show a value's type
and, for scalars, a truncated preview, never the whole value.
"""

from __future__ import annotations

from typing import Any

from meshproof.policy.limits import PREVIEW_CHARS


def type_name(value: Any) -> str:
    """``a string``, ``a list``, ...: the YAML-level type, as a user wrote it."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def preview(value: Any) -> str:
    """``a string 'abc'``, ``a list of 3 items``: type plus a bounded rendering."""
    if isinstance(value, str):
        return f"a string {text(value)}"
    if isinstance(value, bool) or value is None:
        return type_name(value) + ("" if value is None else f" {value}")
    if isinstance(value, int):
        digits = len(str(value)) if abs(value) < 10**PREVIEW_CHARS else None
        return f"an integer {value}" if digits is not None else "an integer with too many digits"
    if isinstance(value, float):
        return f"a number {value!r}"
    if isinstance(value, (list, dict)):
        n = len(value)
        return f"{type_name(value)} of {n} {'item' if n == 1 else 'items'}"
    return type_name(value)


def text(value: str) -> str:
    """A string quoted as Python would, cut to a readable length."""
    if len(value) <= PREVIEW_CHARS:
        return repr(value)
    return f"{value[:PREVIEW_CHARS]!r}... ({len(value)} characters)"
