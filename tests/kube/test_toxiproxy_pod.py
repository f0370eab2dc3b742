"""The kube target's L4 fault pod: the project's own toxiproxy server, from the stock
Python image with its package mounted from a ConfigMap. No cluster here: the test lays
the ConfigMap's items out as the kubelet would (key -> path), runs the container's own
command and environment with ``python3 -S`` (no site-packages: stdlib only, as in the
image), and drives the toxiproxy API: a proxy on a free port to a local server, then a
latency toxic that every request through it must feel."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import kubernetes_validate

from meshproof.targets.kube import manifests
from tests.load.helpers import ok_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, method: str, path: str, body: dict | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"null")


def _get_ms(port: int) -> float:
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        assert r.read() == b"ok"
    return (time.monotonic() - t0) * 1000


def test_toxiproxy_pod_objects_are_valid_and_its_server_runs_from_the_mounted_files(tmp_path):
    cm, dep, svc = manifests.toxiproxy("team-b", "echo", "rtest", "registry.local/python:3")
    for o in (cm, dep, svc):
        kubernetes_validate.validate(o, kubernetes_validate.latest_version(), strict=True)
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["image"] == "registry.local/python:3"  # the stock image, overridable
    # lay the volume out as the kubelet does: each item's key at its path
    root = tmp_path / "mount"
    for item in pod["volumes"][0]["configMap"]["items"]:
        f = root / item["path"]
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(cm["data"][item["key"]])
    api_port = _free_port()
    argv = [sys.executable if a == "python3" else a for a in c["command"]]
    argv[argv.index("-port") + 1] = str(api_port)
    argv[argv.index("-host") + 1] = "127.0.0.1"
    argv.insert(1, "-S")  # no site-packages: only what the image has
    env = {"PATH": os.environ["PATH"], **{e["name"]: e["value"].replace(
        manifests.TOXIPROXY_MOUNT, str(root)) for e in c["env"]}}
    with ok_server() as upstream:
        _run_and_drive(argv, root, env, api_port, upstream)


def _run_and_drive(argv, root, env, api_port, upstream):
    proc = subprocess.Popen(argv, cwd=str(root), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "toxiproxy API listening" in line, proc.stderr.read() if proc.poll() else line
        assert _api(api_port, "GET", "/version")
        listen = _free_port()
        _api(api_port, "POST", "/proxies", {"name": "echo", "listen": f"127.0.0.1:{listen}",
                                            "upstream": upstream.split("//", 1)[1]})
        assert _get_ms(listen) < 150
        _api(api_port, "POST", "/proxies/echo/toxics",
             {"type": "latency", "stream": "downstream", "attributes": {"latency": 200}})
        assert _get_ms(listen) >= 195  # the toxic is on the path
    finally:
        proc.terminate()
        proc.wait(10)
