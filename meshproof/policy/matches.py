"""Request matches: SMI HTTPRouteGroup entries and Gateway API HTTPRouteMatch.

Both become the intent's ``HTTPMatch`` (full-path RE2 regex, methods, exact
headers). Gateway API path types are turned into regexes here so the data
plane has one kind of path match to program.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from meshproof.intent import HTTPMatch
from meshproof.policy.errors import FieldError
from meshproof.policy.fields import Obj
from meshproof.policy.preview import text as quoted
from meshproof.policy.limits import MAX_MATCH_CHARS
from meshproof.policy.regex import check_re2, escape, starts_with_slash

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}")
#: A header value using one of these was written as a regex (SMI examples do:
#: ``.*Firefox.*``). Parentheses, dots and ``+`` are ordinary text in a real
#: User-Agent, so they alone do not make a value a regex.
_REGEX_SYNTAX = re.compile(r"[*?\[\]{}|\\]|\.\+|^\^|\$$")
#: What an HTTP field value may hold (RFC 9110): visible characters, spaces
#: and tabs inside; no CR, LF, NUL or other controls (a request cannot carry them).
_FIELD_VALUE = re.compile(r"(?:[^\x00-\x20\x7f](?:[^\x00-\x08\x0a-\x1f\x7f]*[^\x00-\x20\x7f])?)?")

SMI_MATCH_FIELDS = frozenset({"name", "pathRegex", "methods", "headers"})


def method(value: str, at: str, star: bool = False) -> str:
    if value not in METHODS:
        raise FieldError(at, f"{quoted(value)} is not an HTTP method",
                         f"one of {', '.join(METHODS)} (upper case)"
                         + (", or '*' for any" if star else ""))
    return value


def header_name(name: str, at: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise FieldError(at, f"{quoted(name)} is not a header name",
                         "a header name is letters, digits and !#$%&'*+.^_`|~- (at most 256)")
    return name.lower()


def header_value(value: str, at: str) -> str:
    """An exact header value a request can carry (else the match could never hold)."""
    if len(value) > MAX_MATCH_CHARS:
        raise FieldError(at, f"header value of {len(value)} characters is longer than "
                         f"{MAX_MATCH_CHARS}", "Envoy refuses request headers that long")
    if not _FIELD_VALUE.fullmatch(value):
        raise FieldError(at, f"header value {quoted(value)} has a control character (CR, LF, "
                         "NUL, ...) or leading/trailing whitespace",
                         "no request carries such a value (HTTP trims the whitespace): "
                         "write the value as it arrives")
    return value


def path_regex(pattern: str, at: str) -> str:
    """A full-path RE2 regex that can match a path (paths start with '/')."""
    check_re2(pattern, at)
    if not starts_with_slash(pattern):
        raise FieldError(at, f"path regex {quoted(pattern)} cannot match a path: paths start "
                         "with '/'", "start the regex with '/', e.g. '/reviews/.*'")
    return pattern


def smi_match(m: Obj) -> HTTPMatch:
    """An SMI HTTPRouteGroup match (``pathRegex``, ``methods``, ``headers``).

    ``methods: ["*"]`` means any method. Header values are matched exactly:
    SMI leaves them loosely specified and the intent vocabulary has exact
    header matches only, so a value that looks like a regex is refused
    rather than silently compared as text.
    """
    path = path_regex(m.text("pathRegex"), m.at("pathRegex")) if m.has("pathRegex") else ""
    methods = []
    for i, name in enumerate(m.strs("methods")):
        at = f"{m.at('methods')}[{i}]"
        if name == "*":
            if len(m.value["methods"]) > 1:
                raise FieldError(at, "'*' (any method) is combined with other methods",
                                 "write either '*' alone or a list of methods")
            continue
        methods.append(method(name, at, star=True))
    headers = []
    for name, value in m.string_map("headers").items():
        at = f"{m.at('headers')}.{name}"
        if _REGEX_SYNTAX.search(value):
            raise FieldError(at, f"header value {quoted(value)} looks like a regular expression",
                             "meshproof matches SMI header values exactly; write the exact "
                             "value (e.g. 'jason'); ( ) . + are plain text")
        headers.append((header_name(name, at), header_value(value, at)))
    return _match(path, methods, headers, m.path)


def _match(path: str, methods: list[str], headers: list[tuple[str, str]], at: str) -> HTTPMatch:
    names = [h[0] for h in headers]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise FieldError(at, f"header {quoted(dup)} is matched twice (header names ignore case)")
    if len(set(methods)) != len(methods):
        raise FieldError(at, f"a method is listed twice: {methods}")
    return HTTPMatch(path_regex=path, methods=tuple(methods), headers=tuple(sorted(headers)))


_GW_MATCH = frozenset({"path", "headers", "method", "queryParams"})
_GW_PATH = frozenset({"type", "value"})
_GW_HEADER = frozenset({"type", "name", "value"})
#: Gateway API's bound on header and query parameter matches per match.
MAX_GW_MATCHERS = 16
#: A query parameter name as Gateway API allows it (RFC 3986 unreserved and sub-delims).
_QUERY_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}")


def gateway_path(kind: str, value: str, at: str) -> dict[str, str]:
    """A Gateway API path match as an HTTPMatch path field ({} = any path).

    Exact and PathPrefix stay literal (the mesh uses its own path matchers);
    PathPrefix matches whole segments (``/foo`` matches ``/foo`` and
    ``/foo/bar``, not ``/foobar``) and ignores a trailing slash, per the spec.
    """
    if not value.startswith("/"):
        raise FieldError(at, f"path {quoted(value)} does not start with '/'")
    if kind != "RegularExpression":
        if len(value) > 1024 or not re.fullmatch(r"[!-~]*", value) or "?" in value \
                or "#" in value or "//" in value:
            raise FieldError(at, f"path {quoted(value)} cannot be a request path",
                             "no spaces, control characters, '?', '#' or '//'; "
                             "at most 1024 characters")
    if kind == "Exact":
        return {"path_exact": value}
    if kind == "PathPrefix":
        prefix = value.rstrip("/")
        return {"path_prefix": prefix} if prefix else {}
    return {"path_regex": path_regex(value, at)}


def query_name(name: str, at: str) -> str:
    if not _QUERY_NAME.fullmatch(name):
        raise FieldError(at, f"{quoted(name)} is not a query parameter name",
                         "letters, digits and !#$%&'*+-.^_`|~ (at most 256)")
    return name


def exact_pairs(m: Obj, key: str, what: str, name: Callable[[str, str], str]
                ) -> list[tuple[str, str]]:
    """Gateway API's Exact header or query parameter matches under ``key``: at most
    :data:`MAX_GW_MATCHERS`, each name once (after ``name`` normalises it)."""
    items = m.items(key)
    if len(items) > MAX_GW_MATCHERS:
        raise FieldError(m.at(key), f"{len(items)} {what} matches; Gateway API allows at "
                         f"most {MAX_GW_MATCHERS}", "split the match")
    out: list[tuple[str, str]] = []
    for iat, item in items:
        o = Obj(item, iat, _GW_HEADER, {"name", "value"})
        if o.text("type", "Exact", ("Exact", "RegularExpression")) != "Exact":
            raise FieldError(o.at("type"), f"{what} matches of type RegularExpression are "
                             "not supported", "use type: Exact")
        n = name(o.text("name"), o.at("name"))
        if any(x == n for x, _ in out):
            raise FieldError(o.at("name"), f"{what} {quoted(n)} is matched twice",
                             f"match each {what} once"
                             + (" (names ignore case)" if what == "header" else ""))
        out.append((n, header_value(o.text("value"), o.at("value"))))
    return out


def gateway_match(value: object, at: str) -> HTTPMatch:
    """A Gateway API HTTPRouteMatch (path, method, Exact headers, Exact query params)."""
    m = Obj(value, at, _GW_MATCH)
    path: dict[str, str] = {}
    if m.has("path"):
        p = m.child("path", _GW_PATH)
        kind = p.text("type", "PathPrefix", ("Exact", "PathPrefix", "RegularExpression"))
        path = gateway_path(kind, p.text("value", "/"), p.at("value"))
    methods = [method(m.text("method"), m.at("method"))] if m.has("method") else []
    headers = exact_pairs(m, "headers", "header", header_name)
    query = exact_pairs(m, "queryParams", "query parameter", query_name)
    match = _match("", methods, headers, at)
    return HTTPMatch(methods=match.methods, headers=match.headers,
                     query=tuple(sorted(query)), **path)
