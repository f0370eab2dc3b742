"""RE2 syntax that Python's ``re`` lacks, rewritten so Python's parser can check the rest.

Envoy matches with RE2, so a pattern is valid when RE2 takes it, not when
Python does: ``\\p{L}``, ``[[:alpha:]]``, ``\\x{263a}``, ``\\Q...\\E``, ``\\z``
and ``(?<name>...)`` are RE2 and must load. ``shadow()`` returns a pattern
Python parses into the same structure, with each RE2-only class replaced by a
stand-in class (``\\w``), so the checks and the program-size estimate in
:mod:`meshproof.policy.regex` run on Python's parse tree. What neither has, or
only Python has (``\\u``, ``\\Z``, ``\\C``), is refused here with the reason.
"""

from __future__ import annotations

import re

from meshproof.policy.errors import FieldError
from meshproof.policy.preview import text as quoted

#: RE2's Unicode general categories (``\\p{Lu}``) and the scripts people use in paths.
CLASSES = frozenset("""
Any C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps
S Sc Sk Sm So Z Zl Zp Zs
Arabic Armenian Bengali Cyrillic Devanagari Ethiopic Georgian Greek Gujarati Gurmukhi
Han Hangul Hebrew Hiragana Kannada Katakana Khmer Lao Latin Malayalam Mongolian Myanmar
Oriya Sinhala Tamil Telugu Thai Tibetan
""".split())
POSIX = frozenset("alnum alpha ascii blank cntrl digit graph lower print punct space "
                  "upper word xdigit".split())
_PROP = re.compile(r"\\([pP])(?:\{(\^?)([A-Za-z_]+)\}|([A-Za-z]))")
_POSIX = re.compile(r"\[:(\^?)([a-z]+):\]")
_HEX = re.compile(r"\\x\{([0-9A-Fa-f]{1,8})\}")
_STAND_IN = r"\w"


def _refuse(field: str, pattern: str, what: str, hint: str) -> FieldError:
    return FieldError(field, f"regular expression {quoted(pattern)} {what}", hint)


def shadow(pattern: str, field: str) -> str:
    """``pattern`` with RE2-only syntax replaced by Python equivalents (see module doc)."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            m = _PROP.match(pattern, i)
            if nxt in "pP":
                if m is None:
                    raise _refuse(field, pattern, "has a malformed \\p class",
                                  "write \\p{Name}, e.g. \\p{L} or \\p{Greek}")
                name = m.group(3) or m.group(4)
                if name not in CLASSES:
                    raise _refuse(field, pattern, f"uses the class \\p{{{name[:30]}}}, which "
                                  "meshproof does not know", "classes: " + ", ".join(
                                      sorted(CLASSES)))
                out.append(_STAND_IN)
                i = m.end()
                continue
            if nxt == "x" and pattern.startswith("\\x{", i):
                h = _HEX.match(pattern, i)
                if h is None or int(h.group(1), 16) > 0x10FFFF:
                    raise _refuse(field, pattern, "has a malformed \\x{...} escape",
                                  "write \\x{HHHH} with at most 10FFFF")
                out.append(re.escape(chr(int(h.group(1), 16))))
                i = h.end()
                continue
            if nxt == "Q" and not in_class:
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2:] if end < 0 else pattern[i + 2:end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if nxt == "z":
                out.append(r"\Z")  # RE2's end of text is Python's \Z
                i += 2
                continue
            if nxt in "ZuUNC":
                why = {"Z": ("uses \\Z, which RE2 does not support", "use $ or \\z"),
                       "C": ("uses \\C (any byte), which meshproof refuses",
                             "match characters, e.g. ."),
                       }.get(nxt, (f"uses \\{nxt}, which RE2 does not support",
                                   "write a character as \\x{HHHH}"))
                raise _refuse(field, pattern, *why)
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class and ch == "[":
            m = _POSIX.match(pattern, i)
            if m is not None:
                if m.group(2) not in POSIX:
                    raise _refuse(field, pattern, f"uses the class [:{m.group(2)[:20]}:], "
                                  "which RE2 does not know", "classes: " + ", ".join(
                                      sorted(POSIX)))
                out.append(_STAND_IN)
                i = m.end()
                continue
        if not in_class and ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A leading ']' (or '^]') is a literal in both, not the class's end.
            for lead in ("^", "]"):
                if i < n and pattern[i] == lead:
                    out.append(lead)
                    i += 1
            continue
        if in_class and ch == "]":
            in_class = False
        if not in_class and pattern.startswith("(?<", i) and i + 3 < n and \
                pattern[i + 3] not in "=!":
            out.append("(?P<")  # RE2's named group, Python's spelling
            i += 3
            continue
        out.append(ch)
        i += 1
    return "".join(out)
