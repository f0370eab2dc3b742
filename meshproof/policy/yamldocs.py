"""Read YAML into documents, strictly and with bounded work.

Why not ``yaml.load_all``: PyYAML builds values recursively (nesting 10,000
deep raises RecursionError), keeps the last of two equal keys silently,
turns a list used as a key into a TypeError, and its pure-Python parser is
slow (100,000 documents: minutes). Here the parser only produces events
(libyaml's C parser when PyYAML has it, the pure-Python one otherwise, with
the same rules) and one loop without recursion builds the values, refusing:

- duplicate keys (YAML would keep the last: two ``weight:`` lines, one wins);
- a list or mapping used as a key, and tags other than YAML's plain types;
- nesting deeper than ``MAX_DEPTH``, and aliases that stand for more than
  ``MAX_NODES`` values (an alias bomb is a few KB);
- recursive aliases and integers of absurd length.

The merge key ``<<`` works as YAML 1.1 defines it: the mapping's own keys
win over merged ones, and earlier merged mappings over later ones.

Empty documents (a trailing ``---``, comments only) are skipped but still
counted, so document numbers match what the user sees in the file. A
problem inside one document skips that document and reading goes on; a
syntax error stops the file (later documents cannot be trusted to start
where the broken one ends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

import yaml
from yaml import events as ev

from meshproof.policy.errors import Location, Problem
from meshproof.policy.limits import MAX_DEPTH, MAX_INT_DIGITS, MAX_NODES
from meshproof.policy.preview import text as preview_text

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"
_SYNTAX_HINT = "fix the YAML syntax (indentation, quotes, a missing ':')"
#: Whether libyaml (C) parses; the pure-Python parser applies the same rules, slower.
WITH_LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))


class _EventSource(Protocol):
    def get_event(self) -> Any: ...


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's pure-Python parser alone: events, no composer or constructor."""

    def __init__(self, stream: str | bytes) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


def _parser(data: str | bytes, fast: bool) -> _EventSource:
    if fast and WITH_LIBYAML:
        from yaml._yaml import CParser  # type: ignore[import-not-found]

        return CParser(data)  # type: ignore[no-any-return]
    return _PyParser(data)


class DocumentProblem(Exception):
    """One document breaks a rule above; the reader skips it and goes on."""

    def __init__(self, what: str, mark: Any, hint: str) -> None:
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        super().__init__(where + what)
        self.what = where + what
        self.hint = hint


class _Scalars:
    """Plain scalars -> Python values by YAML 1.1's rules (PyYAML's SafeLoader's)."""

    _TYPES = {"str", "int", "float", "bool", "null", "timestamp"}

    def __init__(self) -> None:
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.cache: dict[str, Any] = {}

    def value(self, e: ev.ScalarEvent) -> tuple[Any, bool]:
        """The scalar's value, and whether it is the merge key ``<<``."""
        tag = e.tag
        if tag is None or tag == "!":
            if not (e.implicit[0] and tag is None):
                return e.value, False  # quoted, or the non-specific tag "!": a string
            cached = self.cache.get(e.value, self)
            if cached is not self:
                return cached, False
            tag = self.resolver.resolve(yaml.ScalarNode, e.value, (True, False))
            if tag == _MERGE:
                return None, True
            out = self._construct(tag, e)
            if len(e.value) <= 64 and len(self.cache) < 4096:
                self.cache[e.value] = out
            return out, False
        if tag == _MERGE:
            return None, True
        return self._construct(tag, e), False

    def _construct(self, tag: str, e: ev.ScalarEvent) -> Any:
        short = tag[len(_TAG):] if tag.startswith(_TAG) else ""
        if short not in self._TYPES:
            raise DocumentProblem(f"the YAML tag {preview_text(tag)} is not supported",
                                  e.start_mark, "policy values are strings, numbers, "
                                  "booleans, lists and mappings: remove the tag")
        if short == "str":
            return e.value
        if short in ("int", "float") and len(e.value) > MAX_INT_DIGITS + 10:
            raise DocumentProblem(f"the number {preview_text(e.value)} has too many digits",
                                  e.start_mark, "no policy field takes a number that long")
        node = yaml.ScalarNode(tag, e.value, e.start_mark, e.end_mark)
        try:
            return getattr(self.constructor, f"construct_yaml_{short}")(node)
        except (ValueError, TypeError, OverflowError, yaml.YAMLError) as exc:
            raise DocumentProblem(f"{preview_text(e.value)} is not a valid {short}",
                                  e.start_mark, "quote it to make it a string") from exc


@dataclass
class _Frame:
    """A list or mapping being built."""

    value: Any
    anchor: str | None
    mark: Any
    weight: int = 1
    key: Any = None
    has_key: bool = False
    key_is_merge: bool = False
    merges: list[tuple[Any, Any]] = field(default_factory=list)


class _Document:
    """Builds one document's value from its events, without recursion."""

    def __init__(self, scalars: _Scalars) -> None:
        self.scalars = scalars
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.root: Any = None

    def feed(self, e: Any) -> bool:
        """Take one event; True once the document's root value is complete."""
        if isinstance(e, ev.ScalarEvent):
            value, is_merge = self.scalars.value(e)
            return self._done(value, 1, e.anchor, e.start_mark, is_merge=is_merge)
        if isinstance(e, ev.AliasEvent):
            if e.anchor not in self.anchors:
                what = ("refers to a value that contains it (recursive alias)"
                        if e.anchor in self.open_anchors else "is not defined before its use")
                raise DocumentProblem(f"alias *{e.anchor[:60]} {what}", e.start_mark,
                                      "define the anchor (&name) before the alias, outside it")
            value, weight = self.anchors[e.anchor]
            return self._done(value, weight, None, e.start_mark, alias=True)
        if isinstance(e, (ev.SequenceStartEvent, ev.MappingStartEvent)):
            self._check_tag(e, "seq" if isinstance(e, ev.SequenceStartEvent) else "map")
            if len(self.stack) >= MAX_DEPTH:
                raise DocumentProblem(f"lists and mappings are nested more than {MAX_DEPTH} "
                                      "deep", e.start_mark, "policy documents nest a few "
                                      "levels; this is not a policy document")
            if e.anchor is not None:
                self.open_anchors.add(e.anchor)
            container: Any = [] if isinstance(e, ev.SequenceStartEvent) else {}
            self.stack.append(_Frame(container, e.anchor, e.start_mark))
            return False
        if isinstance(e, (ev.SequenceEndEvent, ev.MappingEndEvent)):
            frame = self.stack.pop()
            if isinstance(frame.value, dict):
                self._merge(frame)
            if frame.anchor is not None:
                self.open_anchors.discard(frame.anchor)
            return self._done(frame.value, frame.weight, frame.anchor, frame.mark)
        raise DocumentProblem(f"unexpected YAML event {type(e).__name__}",
                              getattr(e, "start_mark", None), _SYNTAX_HINT)

    @staticmethod
    def _check_tag(e: Any, kind: str) -> None:
        if e.tag not in (None, "!", _TAG + kind):
            raise DocumentProblem(f"the YAML tag {preview_text(e.tag)} is not supported",
                                  e.start_mark, "policy values are strings, numbers, "
                                  "booleans, lists and mappings: remove the tag")

    def _done(self, value: Any, weight: int, anchor: str | None, mark: Any,
              is_merge: bool = False, alias: bool = False) -> bool:
        if anchor is not None and not alias:
            self.anchors[anchor] = (value, weight)
        if not self.stack:
            self._check_weight(weight, mark)
            self.root = value
            return True
        top = self.stack[-1]
        top.weight += weight
        self._check_weight(top.weight, mark)
        if isinstance(top.value, list):
            top.value.append(value)
        elif not top.has_key:
            self._key(top, value, mark, is_merge)
        else:
            if top.key_is_merge:
                top.merges.append((value, mark))
            else:
                top.value[top.key] = value
            top.has_key = top.key_is_merge = False
        return False

    @staticmethod
    def _check_weight(weight: int, mark: Any) -> None:
        if weight > MAX_NODES:
            raise DocumentProblem(f"the document stands for more than {MAX_NODES} values "
                                  "(aliases count as copies)", mark,
                                  "this looks like an alias bomb; write the values out")

    @staticmethod
    def _key(top: _Frame, key: Any, mark: Any, is_merge: bool) -> None:
        if isinstance(key, (list, dict)):
            raise DocumentProblem(f"a mapping key is a {'list' if isinstance(key, list) else 'mapping'}",
                                  mark, "keys are field names: write a plain string")
        if not is_merge and key in top.value:
            shown = preview_text(key) if isinstance(key, str) else str(key)[:60]
            raise DocumentProblem(f"duplicate key {shown}", mark,
                                  "YAML would keep only the last one: remove or rename one")
        top.key, top.has_key, top.key_is_merge = key, True, is_merge

    @staticmethod
    def _merge(frame: _Frame) -> None:
        """``<<: *a`` or ``<<: [*a, *b]``: keys not set here, earlier sources first."""
        for value, mark in frame.merges:
            sources = value if isinstance(value, list) else [value]
            for source in sources:
                if not isinstance(source, dict):
                    raise DocumentProblem("a merge key (<<) takes a mapping or a list of "
                                          "mappings", mark, "write <<: *anchor where the "
                                          "anchor is on a mapping")
                for k, v in source.items():
                    frame.value.setdefault(k, v)


def iter_documents(data: str | bytes, source: str, fast: bool = True
                   ) -> Iterator[tuple[int, Any] | Problem]:
    """``(document number, value)`` for each non-empty document, or a ``Problem``.

    Documents count from 1 in each file. ``fast`` picks libyaml when PyYAML
    has it (the pure-Python parser is there for tests and for PyYAML builds
    without it).
    """
    parser = _parser(data, fast)
    scalars = _Scalars()
    index = 0
    doc: _Document | None = None
    skipping = False
    try:
        while True:
            e = parser.get_event()
            if isinstance(e, ev.StreamEndEvent):
                return
            if isinstance(e, ev.DocumentStartEvent):
                index += 1
                doc, skipping = _Document(scalars), False
                continue
            if isinstance(e, (ev.StreamStartEvent, ev.DocumentEndEvent)) or skipping:
                continue
            assert doc is not None
            try:
                complete = doc.feed(e)
            except DocumentProblem as exc:
                skipping = True
                yield Problem(Location(source, index), "", f"bad YAML: {exc.what}", exc.hint)
                continue
            if complete and doc.root is not None:
                yield index, doc.root
    except yaml.YAMLError as exc:
        yield _syntax_problem(exc, source, max(index, 1))
    finally:
        dispose = getattr(parser, "dispose", None)
        if dispose is not None:
            dispose()


def _syntax_problem(exc: yaml.YAMLError, source: str, index: int) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)[:200]
    return Problem(Location(source, index), "", f"bad YAML: {line}{problem}", _SYNTAX_HINT)
