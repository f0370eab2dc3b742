"""ConformanceReport shape and `meshproof diff`."""

from __future__ import annotations

import yaml

from meshproof import cli
from meshproof.conformance.check import CheckSpec
from meshproof.conformance.report import CheckResult, build_report, diff_reports

SPEC = CheckSpec("split-90-10", "d", ("traffic-split",), ("weights-ignored",), ("TrafficSplit",))
OPTS = {"mesh": "reference", "target": "local", "defect": "", "seed": 7}


def report(result: str) -> dict:
    return build_report(OPTS, [CheckResult(SPEC, result, 1.0)], 10.0)


def test_report_shape():
    r = report("passed")
    assert r["kind"] == "ConformanceReport"
    prof = r["profiles"][0]
    assert prof["summary"]["result"] == "success"
    assert prof["summary"]["statistics"] == {"Passed": 1, "Failed": 0, "Skipped": 0}
    assert "traffic-split" in prof["supportedFeatures"]
    assert r["run"]["seed"] == 7 and r["run"]["mesh"] == "reference"
    assert r["checks"][0]["catches"] == ["weights-ignored"]


def test_diff_names_what_changed(tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(report("passed")))
    b.write_text(yaml.safe_dump(report("failed")))
    lines = diff_reports(report("passed"), report("failed"))
    assert "check split-90-10: passed -> failed" in lines
    assert "result: success -> failure" in lines
    assert cli.main(["diff", str(a), str(b)]) == 1
    assert "split-90-10: passed -> failed" in capsys.readouterr().out
    assert cli.main(["diff", str(a), str(a)]) == 0


def test_diff_rejects_non_reports(tmp_path, capsys):
    bad = tmp_path / "x.yaml"
    bad.write_text("hello: 1\n")
    assert cli.main(["diff", str(bad), str(bad)]) == 2
    assert "not a meshproof ConformanceReport" in capsys.readouterr().err
