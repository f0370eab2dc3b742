"""HTTPMatch (path regex, methods, exact headers) -> Envoy route matches and RBAC permissions.

One intent vocabulary feeds two Envoy shapes: a route's ``match`` (caller
side: which requests take a split or a fault) and an RBAC ``permission``
(destination side: which requests an AccessRule allows). Keeping both
translations here means a path regex means the same thing on both sides:
RE2 full match on the path without its query string.

A regex that may be bigger than Envoy's default RE2 program-size limit (100:
a GAMMA path of 95 characters already is) carries the limit the policy
loader enforces (``meshproof.policy.limits.RE2_MAX_PROGRAM_SIZE``)
explicitly; a refused regex would NACK the whole route config. Smaller ones
keep Envoy's default, so their config is what it always was.
"""

from __future__ import annotations

from typing import Any

from meshproof.intent import HTTPMatch
from meshproof.policy.limits import RE2_MAX_PROGRAM_SIZE
from meshproof.policy.regex import estimated_program_size

#: Envoy's default ``re2.max_program_size.error_level``.
ENVOY_DEFAULT_PROGRAM_SIZE = 100


def safe_regex(pattern: str) -> dict[str, Any]:
    """An Envoy RegexMatcher; with the mesh's limit where the default might not do."""
    if estimated_program_size(pattern) <= ENVOY_DEFAULT_PROGRAM_SIZE:
        return {"regex": pattern}
    return {"google_re2": {"max_program_size": RE2_MAX_PROGRAM_SIZE}, "regex": pattern}


def _methods_regex(methods: tuple[str, ...]) -> str:
    return "|".join(sorted(methods))


def header_matchers(m: HTTPMatch) -> list[dict[str, Any]]:
    """Route header matchers (ANDed by Envoy) for a match's methods and exact headers."""
    out: list[dict[str, Any]] = []
    if m.methods:
        out.append({"name": ":method", "string_match": {
            "safe_regex": safe_regex(_methods_regex(m.methods))}})
    for name, value in m.headers:
        out.append({"name": name.lower(), "string_match": {"exact": value}})
    return out


def _path_specifier(m: HTTPMatch, defects: frozenset[str]) -> dict[str, Any]:
    """Envoy's own path matchers for the literal forms; PathPrefix is segment-wise
    (``path_separated_prefix``), unless the ``path-prefix-not-segment`` defect."""
    if m.path_exact:
        return {"path": m.path_exact}
    if m.path_prefix:
        if "path-prefix-not-segment" in defects:
            return {"prefix": m.path_prefix}
        return {"path_separated_prefix": m.path_prefix}
    return {"safe_regex": safe_regex(m.path_regex)}


_PATH_KEYS = ("path", "prefix", "path_separated_prefix", "safe_regex")


def route_match(*ms: HTTPMatch | None, defects: frozenset[str] = frozenset()
                ) -> dict[str, Any]:
    """One route match requiring every given match (AND); None/empty = every request.

    Envoy's route match has one path specifier: the first path match takes
    it; any further one becomes a ``:path`` header regex (which includes
    the query string, hence the optional ``?...`` tail).
    """
    match: dict[str, Any] = {}
    headers: list[dict[str, Any]] = []
    query: list[dict[str, Any]] = []
    for m in ms:
        if m is None:
            continue
        if m.has_path:
            if not any(k in match for k in _PATH_KEYS):
                match.update(_path_specifier(m, defects))
            else:
                headers.append({"name": ":path", "string_match": {
                    "safe_regex": safe_regex(f"(?:{m.path_as_regex()})(?:\\?.*)?")}})
        headers.extend(header_matchers(m))
        query.extend({"name": k, "string_match": {"exact": v}} for k, v in m.query)
    if not any(k in match for k in _PATH_KEYS):
        match["prefix"] = "/"
    if headers:
        match["headers"] = headers
    if query:
        match["query_parameters"] = query
    return match


def is_empty(m: HTTPMatch | None) -> bool:
    return m is None or m.empty


def rbac_permission(m: HTTPMatch) -> dict[str, Any]:
    """An RBAC permission for one route rule: all its parts must hold."""
    rules: list[dict[str, Any]] = []
    if m.path_exact:
        rules.append({"url_path": {"path": {"exact": m.path_exact}}})
    elif m.path_prefix:  # whole segments: the prefix itself, or it and a '/'
        rules.append({"or_rules": {"rules": [
            {"url_path": {"path": {"exact": m.path_prefix}}},
            {"url_path": {"path": {"prefix": m.path_prefix + "/"}}}]}})
    elif m.path_regex:
        # url_path ignores the query string, like the route side's safe_regex.
        rules.append({"url_path": {"path": {"safe_regex": safe_regex(m.path_regex)}}})
    rules.extend({"header": h} for h in header_matchers(m))
    if not rules:
        return {"any": True}
    if len(rules) == 1:
        return rules[0]
    return {"and_rules": {"rules": rules}}


def headers_exact_as_prefix(match: dict[str, Any]) -> dict[str, Any]:
    """A route match whose exact header values are matched as prefixes (defect
    ``split-header-prefix``: a translation that writes ``prefix`` for an exact value)."""
    headers = [{**h, "string_match": {"prefix": h["string_match"]["exact"]}}
               if "exact" in h.get("string_match", {}) else h
               for h in match.get("headers", [])]
    return {**match, "headers": headers} if headers else match
