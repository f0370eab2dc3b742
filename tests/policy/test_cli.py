"""``meshproof apply/delete -f`` reject malformed files before touching any lab.

Only malformed files and ``--dry-run`` here: a valid file without
``--dry-run`` would be applied to whatever lab runs on this machine.
"""

from __future__ import annotations

import pytest

from meshproof.cli import main
from tests.policy.conftest import BAD, EXAMPLES


@pytest.mark.parametrize("command", ["apply", "delete"])
def test_malformed_file_exits_2_naming_the_location(command: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = BAD / "wrong-type.yaml"
    assert main([command, "-f", str(EXAMPLES / "timeout.yaml"), "-f", str(bad)]) == 2
    err = capsys.readouterr().err
    assert (f"{bad}: document 1 (TrafficSplit bookinfo/reviews-canary): "
            "spec.backends[1].weight: must be an integer") in err
    assert "Traceback" not in err


def test_dry_run_prints_intents_and_applies_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--dry-run", "-f", str(EXAMPLES / "retry.yaml")]) == 0
    out = capsys.readouterr().out
    assert '"kind": "Retry"' in out and "nothing applied" in out
