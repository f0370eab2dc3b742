"""Reject regular expressions the data plane (Envoy, RE2) would reject.

A pattern the loader accepts but RE2 does not would pass ``apply`` and then
be NACKed by every sidecar. So a pattern must be RE2 (``\\p{L}`` and
``[[:alpha:]]`` are; see :mod:`meshproof.policy.re2syntax`), use nothing RE2
lacks (lookahead and lookbehind, backreferences, conditionals, atomic
groups and possessive quantifiers, ``\\Z``, the verbose/ASCII/locale flags,
counted repetition above 1000), and fit the program size the mesh allows.
The check walks Python's parse tree, so an escaped ``\\(?=`` is not mistaken
for a lookahead.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Iterator

try:  # Python 3.11+: the parser moved to a private module; the tree is what we need.
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

from meshproof.policy.errors import FieldError
from meshproof.policy.limits import MAX_MATCH_CHARS, RE2_MAX_PROGRAM_SIZE
from meshproof.policy.preview import text as quoted
from meshproof.policy.re2syntax import shadow

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
    """``pattern`` unchanged if RE2 (Envoy) accepts it and it fits the mesh's limit.

    RE2-only syntax is rewritten first (:mod:`meshproof.policy.re2syntax`) so
    Python's parser can check the rest; what RE2 lacks is refused. The
    estimated RE2 program size must fit ``RE2_MAX_PROGRAM_SIZE``, which the
    reference mesh sets on every regex it programs (Envoy's default, 100, is
    exceeded by a 95-character path).
    """
    if len(pattern) > MAX_MATCH_CHARS:
        raise FieldError(field, f"regular expression of {len(pattern)} characters is longer "
                         f"than {MAX_MATCH_CHARS}", "shorten it: no request path is that long")
    python_form = shadow(pattern, field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" and the like
            compiled = re.compile(python_form)
            tree = _p.parse(python_form)
    except (re.error, RecursionError, OverflowError) as exc:
        raise FieldError(field, f"bad regular expression {quoted(pattern)}: "
                         f"{str(exc)[:120]}", _HINT) from exc
    for flag, why in _BAD_FLAGS.items():
        if compiled.flags & flag:
            raise FieldError(field, f"regular expression {quoted(pattern)} uses {why}, which "
                                    "RE2 does not support", _HINT)
    for op, av in _walk(tree):
        if op in _UNSUPPORTED:
            raise FieldError(field, f"regular expression {quoted(pattern)} uses "
                                    f"{_UNSUPPORTED[op]}, which RE2 does not support", _HINT)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi = av[0], av[1]
            if lo > _MAX_REPEAT or (hi is not _c.MAXREPEAT and hi > _MAX_REPEAT):
                raise FieldError(field, f"regular expression {quoted(pattern)} repeats more "
                                        f"than {_MAX_REPEAT} times, RE2's limit", _HINT)
    size = program_size(tree, bool(compiled.flags & re.IGNORECASE))
    if size > RE2_MAX_PROGRAM_SIZE:
        raise FieldError(field, f"regular expression {quoted(pattern)} is too large for the "
                         f"mesh (RE2 program size about {size}, limit {RE2_MAX_PROGRAM_SIZE})",
                         "simplify it: fewer or smaller counted repeats {n}, shorter "
                         "alternatives")
    return pattern


#: Upper bounds of RE2 instructions per node, checked against Envoy's own
#: count (tests/policy/test_envoy_accepts.py): a literal of n characters is
#: n + 4, ``/a{1000}`` 1005, ``\p{L}`` fewer than 20.
_COST_ANY = 10
_COST_CLASS_ITEM = 10
_COST_CATEGORY = 40
_OVERHEAD = 5


def estimated_program_size(pattern: str) -> int:
    """``program_size`` of a pattern string; huge if it does not even parse.

    For the mesh, which decides from it whether Envoy's default limit is enough.
    """
    try:
        python_form = shadow(pattern, "")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flags = re.compile(python_form).flags
            return program_size(_p.parse(python_form), bool(flags & re.IGNORECASE))
    except (FieldError, re.error, RecursionError, OverflowError):
        return 2**31


def program_size(tree: Any, ignorecase: bool = False) -> int:
    """A conservative estimate (never below RE2's) of a pattern's RE2 program size."""
    return _OVERHEAD + _cost(tree, ignorecase)


def _literal_cost(code: int, ignorecase: bool) -> int:
    width = len(chr(code).encode("utf-8", "surrogatepass"))
    return width * (2 if ignorecase else 1)


def _cost(tree: Any, ic: bool) -> int:
    total = 0
    for op, av in tree:
        if op is _c.LITERAL:
            total += _literal_cost(av, ic)
        elif op is _c.NOT_LITERAL or op is _c.ANY:
            total += _COST_ANY
        elif op is _c.IN:
            total += sum(_COST_CATEGORY if o is _c.CATEGORY else
                         _literal_cost(a, ic) if o is _c.LITERAL else _COST_CLASS_ITEM
                         for o, a in av) + 1
        elif op is _c.SUBPATTERN:
            flags_on = av[1]
            total += 2 + _cost(av[-1], ic or bool(flags_on & re.IGNORECASE))
        elif op is _c.BRANCH:
            total += sum(_cost(b, ic) for b in av[1]) + len(av[1])
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            lo, hi, child = av
            c = _cost(child, ic)
            if hi is _c.MAXREPEAT:  # x{n,} = n copies and a loop
                total += max(lo, 1) * c + 1
            else:  # x{n,m} = m copies, m - n of them optional
                total += max(hi, 1) * c + (hi - lo)
        else:  # anchors, \b and the like
            total += 1
    return total


def starts_with_slash(pattern: str) -> bool:
    """Whether the pattern can match a string starting with ``/`` (every path does).

    Conservative: anything it cannot decide (a class, a category) counts as
    yes; it catches ``reviews/.*``, a path regex that can never match.
    """
    tree = _p.parse(shadow(pattern, ""))
    return _may_start(tree) is not False


def _may_start(tree: Any) -> bool | None:
    """True/False: the first character can/cannot be '/'; None: matches empty so far."""
    for op, av in tree:
        if op is _c.AT:
            continue
        if op is _c.LITERAL:
            return av == ord("/")
        if op is _c.NOT_LITERAL:
            return av != ord("/")
        if op is _c.SUBPATTERN:
            r = _may_start(av[-1])
        elif op is _c.BRANCH:
            results = [_may_start(b) for b in av[1]]
            if any(x is True for x in results):
                return True
            r = None if any(x is None for x in results) else False
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT):
            r = _may_start(av[2])
            if r is not False and av[0] > 0:
                return r if r is not None else None
            if r is True:
                return True
            if av[0] > 0:
                return False
            continue
        else:
            return True
        if r is not None:
            return r
    return None


_SPECIAL = set(".^$*+?()[]{}|\\")


def escape(literal: str) -> str:
    """``literal`` as a regex that RE2 and Python read the same (only metacharacters escaped)."""
    return "".join(f"\\{ch}" if ch in _SPECIAL else ch for ch in literal)
