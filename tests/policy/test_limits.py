"""The issue's classes one by one, in process: what each refusal says, and what
is now accepted (merge keys, RE2-only syntax, ports, stdin)."""

from __future__ import annotations

import io

import pytest

from meshproof.policy import PolicyError, load_stream, load_text
from meshproof.policy.limits import MAX_PROBLEMS_SHOWN
from meshproof.policy.yamldocs import iter_documents
from meshproof.targets.model import Registry
from tests.policy.hostile import GROUP, ROUTE, SPLIT, _bombed


def problem(text: str, registry: Registry | None = None) -> str:
    with pytest.raises(PolicyError) as err:
        load_text(text, "f.yaml", registry=registry)
    return str(err.value)


@pytest.mark.parametrize("field", ["apiVersion", "kind", "metadata", "spec", "name", "weight"])
def test_alias_bomb_is_refused_without_expanding(field: str) -> None:
    msg = problem(_bombed(field))
    assert "stands for more than" in msg and len(msg) < 1000


@pytest.mark.parametrize("fast", [True, False])
def test_both_parsers_apply_the_same_rules(fast: bool) -> None:
    text = "a: 1\na: 2\n---\n? [x]\n: 1\n---\nb: {<<: {c: 1, d: 2}, c: 3}\n"
    items = list(iter_documents(text, "f", fast=fast))
    assert ["duplicate key 'a'" in str(items[0]), "mapping key is a list" in str(items[1]),
            items[2]] == [True, True, (3, {"b": {"c": 3, "d": 2}})]


def test_problems_printed_are_capped_with_the_total() -> None:
    msg = problem("kind: X\n---\n" * 500)
    assert f"{500 - MAX_PROBLEMS_SHOWN} more not shown (500 problems in all)" in msg
    assert msg.count("\n") < 3 * MAX_PROBLEMS_SHOWN


def test_ports_are_honoured_or_refused(registry: Registry) -> None:
    (split,) = load_text(ROUTE.format(pport=80, ptype="PathPrefix", path="/", bport=80),
                         registry=registry)
    assert split.weights() == {"reviews-v3": 1}
    msg = problem(ROUTE.format(pport=8080, ptype="PathPrefix", path="/", bport=80), registry)
    assert "spec.parentRefs[0].port: service bookinfo/reviews has no port 8080" in msg
    assert "its ports: 80" in msg


def test_unsupported_kinds_and_fields_are_named_with_what_is() -> None:
    msg = problem("apiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRoute\n"
                  "metadata: {name: t, namespace: a}\n")
    assert "UDPRoute ('specs.smi-spec.io/v1alpha4') is not supported" in msg
    assert "HTTPRouteGroup (specs.smi-spec.io/v1alpha4)" in msg
    route = ROUTE.format(pport=80, ptype="PathPrefix", path="/", bport=80)
    msg = problem(route.replace("    backendRefs", "    retry: {attempts: 2}\n    backendRefs"))
    assert "spec.rules[0].retry: is not supported by meshproof" in msg


def test_same_name_twice_and_empty_files_are_refused() -> None:
    doc = SPLIT.format(name="s", w1=1, w2=1)
    assert "TrafficSplit bookinfo/s is defined twice" in problem(
        doc + "---\n" + doc.replace("service: reviews\n", "service: details\n"))
    assert "contains no policy documents" in problem("")


def test_header_values_exact_with_parentheses_not_with_crlf() -> None:
    ua = "Mozilla/5.0 (X11; Linux x86_64)"
    (split,) = load_text(GROUP.format(match=f"headers: {{user-agent: '{ua}'}}"))
    assert split.match.headers == (("user-agent", ua),)
    assert "control character" in problem(GROUP.format(match='headers: {a: "x\\r\\ny"}'))


@pytest.mark.parametrize("pattern", [r"/\p{L}+", "/[[:alpha:]]+", r"/\x{263a}", r"/\Qa.b\E",
                                     r"/a\z", "/(?<id>[0-9]+)", "/a{1000}"])
def test_re2_syntax_is_accepted(pattern: str) -> None:
    assert load_text(GROUP.format(match=f"pathRegex: '{pattern}'"))


def test_path_regex_must_be_able_to_match_a_path() -> None:
    assert "paths start with '/'" in problem(GROUP.format(match="pathRegex: 'reviews/.*'"))


def test_load_stream_reads_stdin_like_input() -> None:
    doc = SPLIT.format(name="s", w1=1, w2=1)
    assert len(load_stream(io.BytesIO(doc.encode()))) == 1
    with pytest.raises(PolicyError, match="<stdin>: document 1"):
        load_stream(io.StringIO("kind: X\n"))
