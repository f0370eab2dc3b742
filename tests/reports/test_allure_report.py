"""The Allure HTML report: built offline, opened in headless Chromium, the run's checks in it."""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

from tests.conftest import needs_root

pytestmark = [pytest.mark.lab, pytest.mark.mesh, needs_root]

ROOT = Path(__file__).resolve().parents[2]
CHECKS = {"split-100-0", "mtls-caller-identity"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--virtual-time-budget=8000"]


def page_text(url: str) -> str:
    """The rendered page's visible text (scripts run, then the DOM is dumped)."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: run 'make setup' as root"
    with tempfile.TemporaryDirectory() as profile:
        cp = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                             "--dump-dom", url], capture_output=True, text=True, timeout=90)
    body = cp.stdout[cp.stdout.find("<body"):]
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


@pytest.fixture(scope="module")
def served_report(tmp_path_factory):
    work = tmp_path_factory.mktemp("allure")
    cp = subprocess.run(
        [sys.executable, "-m", "pytest", "conformance", "-q", "-p", "no:cacheprovider",
         "-k", "test_split_100_0 or test_app_sees_the_callers_spiffe_id",
         f"--alluredir={work / 'results'}", f"--conformance-report={work / 'report.yaml'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert cp.returncode == 0, cp.stdout[-3000:]
    gen = subprocess.run(["npx", "--no-install", "allure", "generate", str(work / "results"),
                          "-o", str(work / "html")], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"})
    assert gen.returncode == 0, gen.stdout + gen.stderr
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(work / "html"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield work, f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()


def test_report_lists_every_check_of_the_run(served_report):
    work, url = served_report
    overview = page_text(url)
    assert "meshproof conformance" in overview and "2 passed" in overview, overview[:500]
    seen = set()
    for f in (work / "html" / "data" / "test-results").glob("*.json"):
        result_id = f.stem
        name = json.loads(f.read_text())["name"]
        text = page_text(f"{url}#{result_id}")
        assert name in text and "Passed" in text, text[:500]
        seen.add(name)
    assert seen == CHECKS


def test_conformance_report_matches_the_run(served_report):
    work, _ = served_report
    report = yaml.safe_load((work / "report.yaml").read_text())
    assert {c["name"] for c in report["checks"]} == CHECKS
    assert report["profiles"][0]["summary"]["result"] == "success"
    assert report["run"]["envoy"].startswith("1.")
