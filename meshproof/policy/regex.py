"""Reject regular expressions the data plane (Envoy, RE2) would reject.

A pattern Python accepts but RE2 does not would pass the loader and then be
NACKed by every sidecar, long after the user ran ``apply``. So a pattern must
compile with Python's ``re`` *and* use nothing RE2 lacks: lookahead and
lookbehind, backreferences, conditionals, atomic groups and possessive
quantifiers, ``\\Z``, the verbose/ASCII/locale flags, and counted repetition
above 1000. The check walks Python's parse tree, so an escaped ``\\(?=`` is
not mistaken for a lookahead.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

try:  # Python 3.11+: the parser moved to a private module; the tree is what we need.
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

from meshproof.policy.errors import FieldError

_UNSUPPORTED = {
    _c.ASSERT: "lookahead/lookbehind",
    _c.ASSERT_NOT: "negative lookahead/lookbehind",
    _c.GROUPREF: "a backreference",
    _c.GROUPREF_EXISTS: "a conditional group",
}
for _name, _why in (("ATOMIC_GROUP", "an atomic group"),
                    ("POSSESSIVE_REPEAT", "a possessive quantifier")):
    if hasattr(_c, _name):
        _UNSUPPORTED[getattr(_c, _name)] = _why
_BAD_FLAGS = {re.VERBOSE: "the verbose flag (?x)", re.ASCII: "the ASCII flag (?a)",
              re.LOCALE: "the locale flag (?L)"}
#: RE2's limit on {n,m} counts.
_MAX_REPEAT = 1000
_HINT = "Envoy matches with RE2: no lookaround, backreferences or conditionals"


def _children(av: Any) -> Iterator[Any]:
    if isinstance(av, _p.SubPattern):
        yield av
    elif isinstance(av, (list, tuple)):
        for x in av:
            yield from _children(x)


def _walk(tree: Any) -> Iterator[tuple[Any, Any]]:
    for op, av in tree:
        yield op, av
        for child in _children(av):
            yield from _walk(child)


def check_re2(pattern: str, field: str) -> str:
    """``pattern`` unchanged if both Python and RE2 accept it, else ``FieldError``."""
    try:
        compiled = re.compile(pattern)
        tree = _p.parse(pattern)
    except re.error as exc:
        raise FieldError(field, f"bad regular expression {pattern!r}: {exc}", _HINT) from exc
    for flag, why in _BAD_FLAGS.items():
        if compiled.flags & flag:
            raise FieldError(field, f"regular expression {pattern!r} uses {why}, which RE2 "
                                    "does not support", _HINT)
    for op, av in _walk(tree):
        if op in _UNSUPPORTED:
            raise FieldError(field, f"regular expression {pattern!r} uses {_UNSUPPORTED[op]}, "
                                    "which RE2 does not support", _HINT)
        if op == _c.AT and av == _c.AT_END_STRING:
            raise FieldError(field, f"regular expression {pattern!r} uses \\Z, which RE2 "
                                    "does not support", "use $ (or \\z in RE2 only)")
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi = av[0], av[1]
            if lo > _MAX_REPEAT or (hi is not _c.MAXREPEAT and hi > _MAX_REPEAT):
                raise FieldError(field, f"regular expression {pattern!r} repeats more than "
                                        f"{_MAX_REPEAT} times, RE2's limit", _HINT)
    return pattern


_SPECIAL = set(".^$*+?()[]{}|\\")


def escape(literal: str) -> str:
    """``literal`` as a regex that RE2 and Python read the same (only metacharacters escaped)."""
    return "".join(f"\\{ch}" if ch in _SPECIAL else ch for ch in literal)
