"""docs/policy.md's examples are the fixture files, and they load unchanged."""

from __future__ import annotations

import re

import pytest

from meshproof.policy import load_text
from meshproof.targets.model import Registry
from tests.policy.conftest import DOC, EXAMPLES, ROOT

_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```yaml\n(.*?)```", re.S)


def doc_examples() -> list[tuple[str, str]]:
    return _BLOCK.findall(DOC.read_text())


def test_every_yaml_block_names_its_file() -> None:
    assert len(doc_examples()) == DOC.read_text().count("```yaml")


def test_every_example_file_is_documented() -> None:
    documented = {name for name, _ in doc_examples()}
    assert documented == {f"fixtures/policies/{p.name}" for p in EXAMPLES.glob("*.yaml")}


@pytest.mark.parametrize("name,block", doc_examples(), ids=[n for n, _ in doc_examples()])
def test_doc_example_is_the_file_and_loads(name: str, block: str, registry: Registry) -> None:
    assert block == (ROOT / name).read_text(), f"docs/policy.md's copy of {name} differs"
    intents = load_text(block, source=f"docs/policy.md:{name}", registry=registry)
    assert intents or "httproutegroup" in name  # a route group alone sets no intent
