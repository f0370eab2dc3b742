"""Read YAML text into documents, strictly.

PyYAML silently keeps the last of two equal keys; in a policy that hides a
mistake (two ``weight:`` lines, one wins), so a duplicate key is an error
here. Empty documents (a trailing ``---``, comments only) are skipped but
still counted, so document numbers match what the user sees in the file.
"""

from __future__ import annotations

from typing import Any

import yaml

from meshproof.policy.errors import Location, Problem


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_documents(text: str, source: str) -> tuple[list[tuple[int, Any]], list[Problem]]:
    """``[(document number, parsed document)]`` and the YAML error, if any.

    A YAML error stops the file (later documents cannot be trusted to start
    where the broken one ends); the problem names the line and column.
    """
    docs: list[tuple[int, Any]] = []
    index = 0
    try:
        for index, doc in enumerate(yaml.load_all(text, Loader=_StrictLoader), start=1):
            if doc is not None:
                docs.append((index, doc))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return docs, [Problem(Location(source, index + 1), "",
                              f"bad YAML: {line}{problem}",
                              "fix the YAML syntax (indentation, quotes, a missing ':')")]
    return docs, []
