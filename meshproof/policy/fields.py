"""Strict, typed access to one YAML mapping, with the field path for errors.

Every kind's reader goes through ``Obj``: it declares the fields a mapping
may have (an unknown one is a typo the user wants to hear about, not a
setting to ignore) and which are required, and each accessor checks the
type. YAML's loose scalars are not coerced: ``weight: "50"`` is a string,
and ``true`` is not the integer 1.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from meshproof.policy.errors import FieldError
from meshproof.policy.preview import preview
from meshproof.policy.preview import text as quoted

#: A Kubernetes object name that can also be a DNS label (services, namespaces).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
#: A metadata.name (DNS subdomain).
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def join(path: str, key: str | int) -> str:
    """``spec`` + ``backends`` -> ``spec.backends``; + 1 -> ``spec.backends[1]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Obj:
    """A mapping at ``path`` whose keys are checked against ``known``/``required``.

    ``unsupported`` names fields the kind's specification defines but
    meshproof does not map, each with what to do instead: the user hears
    "not supported" (and what is), never "unknown" for a real field, and the
    field is never silently dropped.
    """

    def __init__(self, value: Any, path: str, known: set[str] | frozenset[str],
                 required: set[str] | frozenset[str] = frozenset(),
                 unsupported: Mapping[str, str] | None = None) -> None:
        if not isinstance(value, dict):
            raise FieldError(path or "document", f"must be a mapping, got {preview(value)}")
        self.value = value
        self.path = path
        for key in value:
            if not isinstance(key, str):
                raise FieldError(path or "document", f"field name {preview(key)} is not a "
                                 "string", "field names are strings: quote it or fix the key")
        for key, hint in (unsupported or {}).items():
            if key in value:
                raise FieldError(join(path, key), "is not supported by meshproof",
                                 f"{hint}; supported here: {', '.join(sorted(known))}")
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise FieldError(join(path, unknown[0]), "unknown field",
                             f"fields here: {', '.join(sorted(known))}")
        missing = sorted(set(required) - set(value))
        if missing:
            raise FieldError(join(path, missing[0]), "required field is missing",
                             f"required here: {', '.join(sorted(required))}")

    def has(self, key: str) -> bool:
        return key in self.value

    def at(self, key: str) -> str:
        return join(self.path, key)

    def raw(self, key: str) -> Any:
        return self.value.get(key)

    def text(self, key: str, default: str = "", choices: tuple[str, ...] = ()) -> str:
        if key not in self.value:
            return default
        v = self.value[key]
        if not isinstance(v, str) or not v:
            raise FieldError(self.at(key), f"must be a non-empty string, got {preview(v)}")
        if choices and v not in choices:
            raise FieldError(self.at(key), f"{quoted(v)} is not one of {', '.join(choices)}")
        return v

    def name(self, key: str, default: str = "", subdomain: bool = False) -> str:
        """A Kubernetes name (DNS label; ``subdomain`` allows dots)."""
        v = self.text(key, default)
        pattern = _DNS_SUBDOMAIN if subdomain else _DNS_LABEL
        if v and not pattern.fullmatch(v):
            raise FieldError(self.at(key), f"{quoted(v)} is not a valid name",
                             "lower-case letters, digits and '-', starting and ending "
                             "with a letter or digit")
        return v

    def integer(self, key: str, default: int = 0, lo: int | None = None,
            hi: int | None = None) -> int:
        if key not in self.value:
            return default
        v = self.value[key]
        if isinstance(v, bool) or not isinstance(v, int):
            raise FieldError(self.at(key), f"must be an integer, got {preview(v)}")
        _check_range(self.at(key), v, lo, hi)
        return v

    def number(self, key: str, default: float = 0.0, lo: float | None = None,
               hi: float | None = None) -> float:
        if key not in self.value:
            return default
        v = self.value[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise FieldError(self.at(key), f"must be a number, got {preview(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise FieldError(self.at(key), f"must be a finite number, got {v}")
        _check_range(self.at(key), v, lo, hi)
        return float(v)

    def items(self, key: str, nonempty: bool = False) -> list[tuple[str, Any]]:
        """``[(path of item, item)]``; absent = empty."""
        v = self.value.get(key, [])
        if not isinstance(v, list):
            raise FieldError(self.at(key), f"must be a list, got {preview(v)}")
        if nonempty and not v:
            raise FieldError(self.at(key), "must not be empty")
        return [(join(self.at(key), i), item) for i, item in enumerate(v)]

    def strs(self, key: str, nonempty: bool = False) -> list[str]:
        out = []
        for path, item in self.items(key, nonempty):
            if not isinstance(item, str) or not item:
                raise FieldError(path, f"must be a non-empty string, got {preview(item)}")
            out.append(item)
        return out

    def child(self, key: str, known: set[str] | frozenset[str],
            required: set[str] | frozenset[str] = frozenset()) -> Obj:
        return Obj(self.value.get(key, {}), self.at(key), known, required)

    def string_map(self, key: str) -> dict[str, str]:
        v = self.value.get(key, {})
        if not isinstance(v, dict):
            raise FieldError(self.at(key), f"must be a mapping, got {preview(v)}")
        for k, item in v.items():
            if not isinstance(k, str) or not isinstance(item, str):
                raise FieldError(join(self.at(key), k if isinstance(k, str) else preview(k)),
                                 f"must map a string to a string, got {preview(item)}",
                                 "quote values YAML reads as numbers or booleans: \"1\", \"true\"")
        return dict(v)


def _check_range(path: str, v: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = f"{lo}..{hi}" if lo is not None and hi is not None else (
            f">= {lo}" if lo is not None else f"<= {hi}")
        shown = v if abs(v) < 10**30 else f"a number of {len(str(int(v)))} digits"
        raise FieldError(path, f"{shown} is out of range ({bounds})",
                         f"give a value in {bounds}")
