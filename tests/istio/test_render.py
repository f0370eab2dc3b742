"""Intents -> Istio resources: golden files per intent, every resource checked field by
field against Istio's CRD API (typed models), and the mapping's semantics."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest
import yaml

from meshproof.intent import (AccessMode, AccessRule, Fault, HTTPMatch, MTLSMode,
                              OutlierDetection, Retry, Timeout, TrafficSplit)
from meshproof.mesh.blackbox import sentinel
from meshproof.mesh.istio.render import (Context, Unsupported, istio_path, percentages,
                                         render_all, render_intent)
from tests.istio.istio_model import check

GOLDEN = Path(__file__).parent / "golden"

INTENTS = {
    "mtls-mesh-strict": MTLSMode("STRICT"),
    "mtls-namespace-permissive": MTLSMode("PERMISSIVE", "team-b"),
    "mtls-workload-strict": MTLSMode("STRICT", "team-b", "echo"),
    "split-90-10": TrafficSplit("bookinfo/reviews", (("reviews-v1", 90), ("reviews-v2", 10))),
    "split-50-50-0": TrafficSplit("bookinfo/reviews", (("reviews-v1", 1), ("reviews-v2", 1),
                                                       ("reviews-v3", 0))),
    "split-header-match": TrafficSplit("bookinfo/reviews", (("reviews-v3", 100),),
                                       HTTPMatch(headers=(("x-canary", "yes"),))),
    "split-path-methods-match": TrafficSplit(
        "bookinfo/reviews", (("reviews-v3", 100),),
        HTTPMatch(path_regex="/reviews/[0-9]+", methods=("GET", "HEAD"))),
    "access-mode-smi-namespace": AccessMode("smi", "team-b"),
    "access-mode-smi-mesh": AccessMode("smi"),
    "access-rule": AccessRule("team-b/a-to-echo", "team-b/echo", ("team-a/client",)),
    "access-rule-routes": AccessRule(
        "team-b/routes", "team-b/echo", ("team-a/client", "team-c/*"),
        (HTTPMatch(path_regex="/echo", methods=("GET",)),
         HTTPMatch(path_regex="/status/.*", headers=(("x-team", "a"),)))),
    "retry": Retry("team-b/echo", 3, 200, ("5xx", "reset")),
    "retry-zero": Retry("team-b/echo", 0),
    "timeout": Timeout("team-b/echo", 300),
    "fault-abort": Fault("team-b/echo", abort_status=503, abort_percent=30),
    "fault-delay-match": Fault("team-b/echo", delay_ms=150, delay_percent=50,
                               match=HTTPMatch(path_regex="/delay/.*")),
    "outlier": OutlierDetection("bookinfo/ratings", 3, 500, 2000, 50),
    "sentinel": sentinel(7),
}


def dump(docs):
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.mark.parametrize("name", sorted(INTENTS))
def test_golden(name):
    text = dump(render_intent(INTENTS[name]))
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("MESHPROOF_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.read_text() == text, f"{path} differs (MESHPROOF_UPDATE_GOLDEN=1 rewrites)"


@pytest.mark.parametrize("name", sorted(INTENTS))
def test_each_resource_matches_istios_api(name):
    docs = render_intent(INTENTS[name])
    assert docs
    for d in docs:
        check(d)


def test_combined_set_matches_istios_api():
    docs = render_all(list(INTENTS.values())[:5] + [
        TrafficSplit("bookinfo/reviews", (("reviews-v1", 90), ("reviews-v2", 10)),
                     HTTPMatch(headers=(("x-user", "jason"),))),
        Retry("bookinfo/reviews", 2, 200), Timeout("bookinfo/reviews", 1500),
        Fault("bookinfo/reviews", abort_status=500, abort_percent=1,
              match=HTTPMatch(methods=("POST",))),
        OutlierDetection("bookinfo/reviews")], Context.of(labels={"meshproof.io/run": "r1"}))
    for d in docs:
        check(d)
        assert d["metadata"]["labels"] == {"meshproof.io/run": "r1"}
    vs = [d for d in docs if d["kind"] == "VirtualService"]
    assert len(vs) == 1, "one VirtualService per host: Istio does not merge them"
    http = vs[0]["spec"]["http"]
    assert [("match" in h) for h in http] == [True, True, False]  # default route last
    for h in http:
        assert h["timeout"] == "1500ms" and h["retries"]["attempts"] == 2
    dr = [d for d in docs if d["kind"] == "DestinationRule"]
    assert len(dr) == 1 and "outlierDetection" in dr[0]["spec"]["trafficPolicy"]
    assert [s["name"] for s in dr[0]["spec"]["subsets"]] == ["reviews-v1", "reviews-v2"]


def test_model_refuses_wrong_types_and_unknown_fields():
    vs = render_intent(INTENTS["retry"])[0]
    vs["spec"]["http"][0]["retries"]["attempts"] = "three"
    with pytest.raises(pydantic.ValidationError):
        check(vs)
    pa = render_intent(INTENTS["mtls-mesh-strict"])[0]
    pa["spec"]["mtls"]["strict"] = True
    with pytest.raises(AssertionError, match="spec.mtls.strict: unknown"):
        check(pa)


def test_split_semantics():
    (vs, dr) = render_intent(INTENTS["split-50-50-0"])
    route = vs["spec"]["http"][0]["route"]
    assert [r["weight"] for r in route] == [50, 50, 0]
    assert {r["destination"]["subset"] for r in route} == {"reviews-v1", "reviews-v2",
                                                           "reviews-v3"}
    assert {s["name"]: s["labels"] for s in dr["spec"]["subsets"]}["reviews-v3"] == \
        {"version": "v3"}
    assert percentages([1, 1, 1]) == [34, 33, 33] and sum(percentages([7, 3, 5])) == 100


def test_match_one_request_per_method():
    vs = render_intent(INTENTS["split-path-methods-match"])[0]
    first = vs["spec"]["http"][0]
    assert first["match"] == [{"uri": {"regex": "/reviews/[0-9]+"}, "method": {"exact": "GET"}},
                              {"uri": {"regex": "/reviews/[0-9]+"}, "method": {"exact": "HEAD"}}]
    assert vs["spec"]["http"][1]["route"] == [
        {"destination": {"host": "reviews.bookinfo.svc.cluster.local"}}]


def test_retries_mean_retries_not_attempts():
    vs = render_intent(Retry("team-b/echo", 3))[0]
    assert vs["spec"]["http"][0]["retries"]["attempts"] == 3  # Istio: retries, + the first
    assert render_intent(INTENTS["retry-zero"])[0]["spec"]["http"][0]["retries"][
        "attempts"] == 0  # Istio's default (2 retries) switched off


def test_mtls_scopes():
    mesh, ns, wl = (render_intent(INTENTS[n])[0] for n in
                    ("mtls-mesh-strict", "mtls-namespace-permissive", "mtls-workload-strict"))
    assert (mesh["metadata"]["namespace"], mesh["metadata"]["name"]) == ("istio-system",
                                                                         "default")
    assert (ns["metadata"]["namespace"], ns["metadata"]["name"]) == ("team-b", "default")
    assert wl["spec"]["selector"] == {"matchLabels": {"meshproof.io/workload": "echo"}}


def test_access_deny_by_default_and_rules():
    assert render_intent(INTENTS["access-mode-smi-namespace"])[0]["spec"] == {}
    assert render_intent(INTENTS["access-mode-smi-mesh"])[0]["metadata"]["namespace"] == \
        "istio-system"
    ap = render_intent(INTENTS["access-rule-routes"])[0]
    rules = ap["spec"]["rules"]
    assert rules[0]["from"] == [{"source": {"principals": ["cluster.local/ns/team-a/sa/client"],
                                            "namespaces": ["team-c"]}}]
    assert rules[0]["to"] == [{"operation": {"paths": ["/echo"], "methods": ["GET"]}}]
    assert rules[1]["to"] == [{"operation": {"paths": ["/status/*"]}}]
    assert rules[1]["when"] == [{"key": "request.headers[x-team]", "values": ["a"]}]
    # permissive destination: the ALLOW policy is not rendered (it would deny everyone else)
    assert render_all([INTENTS["access-rule"]]) == []
    assert render_all([AccessMode("smi"), AccessMode("permissive", "team-b"),
                       INTENTS["access-rule"]])[1:] == []


@pytest.mark.parametrize("rx,path", [("/echo", "/echo"), ("/status/.*", "/status/*"),
                                     ("^/a\\.b$", "/a.b"), ("/.*", None)])
def test_paths(rx, path):
    assert istio_path(rx) == path


@pytest.mark.parametrize("rx", ["/echo/[0-9]+", "/a|/b", "/x.*/y"])
def test_regex_paths_refused_not_widened(rx):
    with pytest.raises(Unsupported, match="no Istio AuthorizationPolicy form"):
        istio_path(rx)
