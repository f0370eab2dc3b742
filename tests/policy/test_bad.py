"""Malformed policy is rejected with file, document, resource and field named, and
nothing is returned.

Each file in bad/ states what its error must say in ``# expect-...`` header
lines, so adding a case is adding a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshproof.errors import ConfigError
from meshproof.policy import PolicyError, load_files, load_text
from meshproof.targets.model import Registry
from tests.policy.conftest import BAD, EXAMPLES

CASES = sorted(BAD.glob("*.yaml"))


def expectations(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("# expect-"):
            key, _, value = line[len("# expect-"):].partition(":")
            out[key] = value.strip()
    assert set(out) == {"document", "resource", "field", "text"}, f"{path}: header incomplete"
    return out


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_file_is_rejected_with_its_location(path: Path, registry: Registry) -> None:
    want = expectations(path)
    with pytest.raises(PolicyError) as err:
        load_files([path], registry=registry)
    first = err.value.problems[0]
    assert (first.location.file, first.location.document, first.location.resource,
            first.field) == (str(path), int(want["document"]), want["resource"], want["field"])
    message = str(err.value)
    assert want["text"] in message
    where = f"{path}: document {want['document']}"
    if want["resource"]:
        where += f" ({want['resource']})"
    assert message.startswith(where + (f": {want['field']}: " if want["field"] else ": "))
    assert "hint:" in message  # every error says what to do


def test_there_are_bad_cases_for_every_promised_rejection() -> None:
    names = {p.stem for p in CASES}
    for needed in ("bad-yaml", "unknown-apiversion", "unknown-kind", "unknown-field",
                   "missing-field", "wrong-type", "zero-weights", "missing-service",
                   "missing-routegroup", "bad-regex-lookahead", "bad-regex-syntax",
                   "bad-regex-backreference"):
        assert needed in names


def test_a_good_file_with_a_bad_one_yields_nothing(registry: Registry) -> None:
    """All or nothing across the whole load, not just per file."""
    with pytest.raises(PolicyError) as err:
        load_files([EXAMPLES / "timeout.yaml", BAD / "wrong-type.yaml"], registry=registry)
    assert len(err.value.problems) == 1


def test_every_problem_of_a_load_is_reported() -> None:
    text = (BAD / "wrong-type.yaml").read_text() + "---\n" + (
        BAD / "bad-duration.yaml").read_text()
    with pytest.raises(PolicyError) as err:
        load_text(text, "two.yaml")
    assert [(p.location.document, p.field) for p in err.value.problems] == [
        (1, "spec.backends[1].weight"), (2, "spec.timeout")]
    assert "and 1 more" in str(err.value)


def test_policy_error_is_a_config_error() -> None:
    """The CLI's MeshproofError handling (exit 2, no traceback) applies."""
    with pytest.raises(ConfigError):
        load_text("kind: [", "x.yaml")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="nope.yaml: document 0: cannot read"):
        load_files([tmp_path / "nope.yaml"])


def test_without_registry_missing_services_pass() -> None:
    """The registry is what makes a reference checkable; without it, shape only."""
    assert load_files([BAD / "missing-service.yaml"])


def test_document_that_is_not_a_mapping() -> None:
    with pytest.raises(PolicyError) as err:
        load_text("- a\n- b\n", "list.yaml")
    assert str(err.value).startswith("list.yaml: document 1: document: must be a mapping")


def route_group(path_regex: str) -> str:
    return f"""
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: g, namespace: bookinfo}}
spec:
  matches: [{{name: m, pathRegex: '{path_regex}'}}]
"""


@pytest.mark.parametrize("pattern", ["/(?=a)", "/(?<=a)b", "/(?<!a)b", r"/(a)\1",
                                     "/(?P<x>a)(?P=x)", "/(?>a)", "/a*+", r"/a\Z",
                                     "(?x)/a", "/a{1001}", "/(", "/[z-a]", "/a**"])
def test_regexes_re2_rejects(pattern: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_text(route_group(pattern))
    assert err.value.problems[0].field == "spec.matches[0].pathRegex"


@pytest.mark.parametrize("pattern", [r"/\(?=x\)", "/(?P<v>[0-9]+)", "(?i)/reviews",
                                     "/a{2,1000}", "/[^/]+/x$"])
def test_regexes_re2_accepts(pattern: str) -> None:
    assert load_text(route_group(pattern)) == []


@pytest.mark.parametrize("value,ms", [("300ms", 300), ("2s", 2000), ("1m30s", 90_000),
                                      ("1h", 3_600_000), ("1s500ms", 1500)])
def test_durations(value: str, ms: int) -> None:
    (t,) = load_text(f"""
apiVersion: policy.meshproof.dev/v1alpha1
kind: Timeout
metadata: {{name: t, namespace: bookinfo}}
spec: {{service: details, timeout: {value}}}
""")
    assert t.timeout_ms == ms


@pytest.mark.parametrize("value", ["2", "1.5s", "'2 s'", "2S", "-1s", "s", "1s1h", "2s2s",
                                   "100000s", "0s", "P1S", "'2'"])
def test_bad_durations(value: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_text(f"""
apiVersion: policy.meshproof.dev/v1alpha1
kind: Timeout
metadata: {{name: t, namespace: bookinfo}}
spec: {{service: details, timeout: {value}}}
""")
    assert err.value.problems[0].field == "spec.timeout"
