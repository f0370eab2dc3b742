"""Request JSON read the way Go's encoding/json fills toxiproxy's structs.

Clients see the Go decoder's strictness, so we keep it: a field gets only
its own JSON type (``"enabled": "false"`` is an error, not a truthy string),
int64 attributes take integer literals in range (``100.0`` and ``1e2`` are
refused, as strconv.ParseInt refuses them), toxicity is a float32 (``1e400``
overflows it), and NaN or Infinity are not JSON at all. What passes can
always be written back as valid JSON. Errors carry Go's wording:
``json: cannot unmarshal <what> into Go struct field <Struct>.<field> of type <type>``.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Callable, TypeVar

from meshproof.toxiproxy.errors import BAD_REQUEST_BODY, ApiError

INT64 = (-(2**63), 2**63 - 1)
T = TypeVar("T")


class _Number(float):
    """A JSON number written with a fraction or exponent; keeps its literal for error messages."""

    literal: str


def _parse_float(text: str) -> _Number:
    number = _Number(text)
    number.literal = text
    return number


def _no_constant(name: str) -> object:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def loads(body: bytes) -> object:
    """Parse a request body; NaN, Infinity and -Infinity are syntax errors, as in Go."""
    try:
        return json.loads(body.decode("utf-8"), parse_float=_parse_float, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BAD_REQUEST_BODY.wrap(str(exc)) from exc


def what(value: object) -> str:
    """Go's UnmarshalTypeError.Value for a JSON value of the wrong type."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "number"


def type_error(what: str, where: str, go_type: str) -> ApiError:
    return BAD_REQUEST_BODY.wrap(f"json: cannot unmarshal {what} into Go struct field {where} of type {go_type}")


def _literal(value: int | float) -> str:
    return value.literal if isinstance(value, _Number) else str(value)


def string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise type_error(what(value), where, "string")
    return value


def boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise type_error(what(value), where, "bool")
    return value


def integer(value: object, where: str, go_type: str = "int64") -> int:
    """A Go int64 (or int, 64-bit): integer literal syntax, within range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error(what(value), where, go_type)
    if isinstance(value, float) or not INT64[0] <= value <= INT64[1]:
        raise type_error(f"number {_literal(value)}", where, go_type)
    return value


def float32(value: object, where: str) -> float:
    """A Go float32, rounded as Go stores it, as a float that prints like Go prints it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error(what(value), where, "float32")
    try:
        stored = struct.unpack("f", struct.pack("f", float(value)))[0]
    except OverflowError:  # an int literal too big for a double
        stored = math.inf
    if math.isinf(stored):  # Go's strconv.ParseFloat(s, 32): out of range
        raise type_error(f"number {_literal(value)}", where, "float32")
    return _shortest32(stored)


def _shortest32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (what Go's json.Marshal writes)."""
    packed = struct.pack("f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("f", candidate) == packed:
            return candidate
    return value


def optional(obj: dict[str, object], key: str, read: Callable[[object, str], T], where: str, default: T) -> T:
    """A field that JSON null or absence leaves at its default, as Go's decoder does."""
    value = obj.get(key)
    return default if value is None else read(value, where)
