"""ConformanceReport shape, the interrupted report, and `meshproof diff` on good and bad input."""

from __future__ import annotations

import pytest
import yaml

from meshproof.conformance.spec import CheckSpec
from meshproof.errors import ConfigError
from meshproof.report.conformance import CheckResult, RunInfo, build_report
from meshproof.report.diff import diff_reports, load_report

SPEC = CheckSpec("split-90-10", "d", ("traffic-split",), ("weights-ignored",), ("TrafficSplit",))
OTHER = CheckSpec("timeout-504-within-bound", "d", ("timeouts",), (), ("Timeout",))
RUN = RunInfo(mesh="reference", target="local", seed=7, programmed_method="acked",
              claims=frozenset({"traffic-split", "timeouts"}))


def report(result: str, run: RunInfo = RUN) -> dict:
    return build_report(run, [CheckResult(SPEC, result, 1.0, programmed_s=[0.02, 0.05])])


def test_report_shape():
    r = report("passed")
    assert r["kind"] == "ConformanceReport"
    prof = r["profiles"][0]
    assert prof["summary"]["result"] == "success"
    assert prof["summary"]["statistics"] == {"Passed": 1, "Failed": 0, "Skipped": 0,
                                             "NotRun": 0}
    assert "traffic-split" in prof["supportedFeatures"]
    assert "mtls-strict" in prof["unsupportedFeatures"]
    assert r["run"]["seed"] == 7 and r["run"]["mesh"] == "reference"
    assert r["run"]["programmed"] == {"method": "acked", "waits": 2, "p50_s": 0.05,
                                      "max_s": 0.05}
    assert r["checks"][0]["catches"] == ["weights-ignored"]


def gw(name: str) -> CheckSpec:
    return CheckSpec(name, "d", ("gamma-httproute",), (), ("HTTPRoute",))


def test_gateway_api_profiles_split_core_extended_and_provisional():
    from meshproof.conformance import gatewayapi

    results = [CheckResult(gw(t.check), "passed", 1.0) for t in gatewayapi.TESTS if t.check]
    r = build_report(RUN, results + [CheckResult(SPEC, "passed", 1.0)])
    assert (r["gatewayAPIVersion"], r["gatewayAPIChannel"]) == ("v1.6.0", "standard")
    names = [p["name"] for p in r["profiles"]]
    assert names[:3] == ["MESHPROOF", "MESH-HTTP", "MESH-GRPC"]
    http = r["profiles"][1]
    assert http["core"] == {"result": "success", "statistics": {
        "Failed": 0, "Passed": 7, "Skipped": 0}}
    ext = http["extended"]
    assert ext["result"] == "success" and "skippedTests" not in ext
    assert "MeshHTTPRouteQueryParamMatching" in ext["supportedFeatures"]
    assert ext["unsupportedFeatures"] == []
    assert http["succeededProvisionalTests"] == [
        "MeshHTTPRoute303Redirect", "MeshHTTPRoute307Redirect", "MeshHTTPRoute308Redirect",
        "MeshHTTPRouteNamedRule"]
    assert http["summary"] == "Core tests succeeded. Extended tests succeeded."
    assert r["profiles"][2]["core"]["statistics"]["Passed"] == 1
    # A Gateway API test whose check did not run is skipped, never absent.
    r0 = build_report(RUN, results[1:])
    assert r0["profiles"][1]["core"]["skippedTests"] == ["MeshBasic"]
    # meshproof's own checks keep their own profile; the first profile is the whole run.
    assert r["profiles"][3]["name"] == "MESHPROOF-ROUTING"
    assert r["profiles"][0]["summary"]["statistics"]["Passed"] == len(results) + 1
    assert r["checks"][0]["gatewayAPITest"] == "MeshBasic"
    # A failed core test fails the core section; diff names the section.
    failed = [CheckResult(gw("gw-mesh-basic"), "failed", 1.0), *results[1:]]
    r2 = build_report(RUN, failed)
    assert r2["profiles"][1]["core"]["result"] == "failure"
    assert r2["profiles"][1]["core"]["failedTests"] == ["MeshBasic"]
    assert "profile MESH-HTTP core: success -> failure" in diff_reports(r, r2)


def test_interrupted_report_says_so_and_lists_what_never_ran():
    run = RunInfo(mesh="reference", target="local", interrupted=True)
    r = build_report(run, [CheckResult(SPEC, "passed", 1.0),
                           CheckResult(OTHER, "not-run", 0.0, reason="interrupted")])
    summary = r["profiles"][0]["summary"]
    assert summary["result"] == "interrupted" and r["run"]["interrupted"] is True
    assert summary["notRunTests"] == ["timeout-504-within-bound"]
    assert summary["statistics"]["Passed"] == 1


def test_diff_names_what_changed():
    lines = diff_reports(report("passed"), report("failed"))
    assert "check split-90-10: passed -> failed" in lines
    assert "result: success -> failure" in lines
    assert diff_reports(report("passed"), report("passed")) == []


GOOD = yaml.safe_dump(report("passed"))
MALFORMED = {
    "empty": "",
    "scalar": "42\n",
    "list": "- 1\n- 2\n",
    "wrong kind": "kind: Pod\n",
    "no profiles": "kind: ConformanceReport\n",
    "profiles not a list": "kind: ConformanceReport\nprofiles: 3\n",
    "empty profiles": "kind: ConformanceReport\nprofiles: []\n",
    "profile not a mapping": "kind: ConformanceReport\nprofiles: [1]\n",
    "no summary": "kind: ConformanceReport\nprofiles: [{name: x}]\n",
    "summary result not text": "kind: ConformanceReport\nprofiles: [{summary: {result: [1]}}]\n",
    "features not a list": GOOD.replace("supportedFeatures:", "supportedFeatures: 7\n  x:"),
    "checks not a list": GOOD + "checks: 5\n" if "checks:" not in GOOD else
    GOOD.split("checks:")[0] + "checks: 5\n",
    "check without name": GOOD.split("checks:")[0] + "checks: [{result: passed}]\n",
    "check not a mapping": GOOD.split("checks:")[0] + "checks: [7]\n",
    "run not a mapping": GOOD.replace("run:", "run: 3\nx:", 1),
    "not yaml": "kind: [unclosed\n",
    "binary": "\x00\x01\x02",
    "deep nesting": "[" * 5000 + "]" * 5000,
    "tabs": "kind:\tConformanceReport\n\t- x\n",
    "alias bomb": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\n"
                  "c: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nkind: Nope\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_reports_are_config_errors(name, tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text(MALFORMED[name])
    with pytest.raises(ConfigError, match="ConformanceReport|not YAML"):
        load_report(f)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read report"):
        load_report(tmp_path / "nope.yaml")
