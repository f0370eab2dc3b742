"""The sample app and the probe speak HTTP/1.1, HTTP/2 (h2c and TLS), gRPC and TCP.

Both run here the way a pod runs them: a stock interpreter (``/usr/bin/python3``,
not this venv) with the scripts copied beside a staged ``pylib/``
(meshproof.podlib). Each side is tested against a real third-party peer:
curl (nghttp2) and grpcio's client against the app, a grpcio server against
the probe, so neither half only agrees with itself.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from meshproof import paths, podlib
from meshproof.pki import foreign_cert

POD_PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(not os.path.exists(POD_PYTHON), reason="no /usr/bin/python3")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def pod(tmp_path_factory):
    """The app on four ports (HTTP, HTTP/2, gRPC, TCP) plus TLS, from a staged dir."""
    d = tmp_path_factory.mktemp("pod")
    shutil.copy(paths.WORKLOAD_PY, d / "workload.py")
    shutil.copy(paths.PROBE_PY, d / "probe.py")
    assert podlib.stage(d) > 10
    cert, key = foreign_cert("spiffe://cluster.local/ns/t/sa/app")
    (d / "c.pem").write_text(cert)
    (d / "k.pem").write_text(key)
    http, h2, grpc_port, tcp, tls = _free_ports(5)
    env = {"PATH": "/usr/bin:/bin", "MESHPROOF_ROLE": "echo", "MESHPROOF_SERVICE": "echo",
           "MESHPROOF_VERSION": "v7", "MESHPROOF_POD": "echo-0", "MESHPROOF_NAMESPACE": "t",
           "MESHPROOF_PORT": str(http), "MESHPROOF_HTTP_PORTS": f"{h2},{grpc_port}",
           "MESHPROOF_TCP_PORTS": str(tcp), "MESHPROOF_TLS_PORT": str(tls),
           "MESHPROOF_TLS_CERT": str(d / "c.pem"), "MESHPROOF_TLS_KEY": str(d / "k.pem"),
           "MESHPROOF_READY_FILE": str(d / "ready")}
    proc = subprocess.Popen([POD_PYTHON, "-I", str(d / "workload.py")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not (d / "ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    yield {"dir": d, "http": http, "h2": h2, "grpc": grpc_port, "tcp": tcp, "tls": tls}
    proc.terminate()
    proc.wait(5)


def probe(pod, order: dict) -> list[dict]:
    """The probe as the kube target runs it: ``--once``, stock interpreter, isolated mode."""
    out = subprocess.run([POD_PYTHON, "-I", str(pod["dir"] / "probe.py"), "--once"],
                         input=json.dumps(order) + "\n", capture_output=True, text=True,
                         timeout=30, env={"PATH": "/usr/bin:/bin"})
    answer = json.loads(out.stdout)
    assert "results" in answer, answer
    return answer["results"]


def test_curl_speaks_h2c_and_h2_to_the_app(pod):
    for args, url in ((["--http2-prior-knowledge"], f"http://127.0.0.1:{pod['h2']}/echo"),
                      (["--http2", "-k"], f"https://127.0.0.1:{pod['tls']}/echo"),
                      ([], f"http://127.0.0.1:{pod['http']}/echo")):
        out = subprocess.run(["curl", "-s", "-H", "x-probe: 1", "-w", "\n%{http_version}",
                              *args, url], capture_output=True, text=True, timeout=10)
        body, _, version = out.stdout.rpartition("\n")
        seen = json.loads(body)
        want = "2" if args else "1.1"
        assert version == want and seen["protocol"] == ("HTTP/2" if args else "HTTP/1.1")
        assert seen["headers"]["x-probe"] == "1" and seen["version"] == "v7"


def test_grpcio_client_unary_and_server_stream(pod):
    import sys
    sys.path.insert(0, str(pod["dir"]))
    try:
        import probe as p  # the probe's hand-written protobuf codec
    finally:
        sys.path.pop(0)
    with grpc.insecure_channel(f"127.0.0.1:{pod['grpc']}") as ch:
        unary = ch.unary_unary("/meshproof.echo.EchoTestService/Echo")
        resp, call = unary.with_call(p.encode_echo_request("hello"), timeout=5,
                                     metadata=[("x-caller", "grpcio")])
        seen = json.loads(p.decode_string_field(resp))
        assert seen["message"] == "hello" and seen["headers"]["x-caller"] == "grpcio"
        assert seen["protocol"] == "gRPC" and ("x-version", "v7") in call.initial_metadata()
        stream = ch.unary_stream("/meshproof.echo.EchoTestService/EchoStream")
        got = [json.loads(p.decode_string_field(m))["index"]
               for m in stream(p.encode_echo_request("s", 5), timeout=5)]
        assert got == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("fresh", [True, False])
def test_probe_every_protocol_against_the_app(pod, fresh):
    h = "127.0.0.1"
    cases = [
        ({"url": f"http://{h}:{pod['http']}/echo"}, "http/1.1", "HTTP/1.1"),
        ({"url": f"http://{h}:{pod['h2']}/echo", "protocol": "http2"}, "h2", "HTTP/2"),
        ({"url": f"https://{h}:{pod['tls']}/echo", "protocol": "http2",
          "tls": {"ca": ""}}, "h2", "HTTP/2"),
        ({"url": f"http://{h}:{pod['grpc']}/meshproof.echo.EchoTestService/Echo",
          "protocol": "grpc", "body": "hi"}, "grpc", "gRPC"),
    ]
    for order, proto, seen_as in cases:
        rs = probe(pod, {**order, "count": 6, "concurrency": 2, "fresh": fresh,
                         "headers": {"x-t": "1"}})
        for r in rs:
            assert (r["status"], r["error"], r["protocol"]) == (200, None, proto), r
            assert r["headers"]["x-version"] == "v7" and r["body"]["protocol"] == seen_as
            assert r["body"]["headers"]["x-t"] == "1"
    stream = probe(pod, {"url": f"http://{h}:{pod['grpc']}/meshproof.echo.EchoTestService/"
                                "EchoStream", "protocol": "grpc", "stream_count": 4,
                         "count": 3, "fresh": fresh})
    assert [(r["grpc_status"], r["messages"]) for r in stream] == [(0, 4)] * 3
    tcp = probe(pod, {"url": f"tcp://{h}:{pod['tcp']}", "protocol": "tcp", "count": 3,
                      "body": "ping-123\n", "fresh": fresh})
    for r in tcp:
        assert r["messages"] == 1 and r["error"] is None, r
        assert r["banner"].startswith("meshproof-echo service=echo version=v7 pod=echo-0")
        assert r["headers"]["x-version"] == "v7"


@pytest.mark.parametrize("fresh", [True, False])
def test_probe_interleaves_urls_request_by_request(pod, fresh):
    """``interleave``: request i goes to (url, *interleave)[i % 3], over the same workers
    (a control group in the same window), pooled connections kept per URL."""
    h = f"http://127.0.0.1:{pod['http']}"
    rs = probe(pod, {"url": f"{h}/echo", "interleave": [f"{h}/status/418",
                                                        f"http://127.0.0.1:{pod['h2']}/echo"],
                     "count": 12, "concurrency": 4, "fresh": fresh})
    assert [(r["i"], r["status"]) for r in rs] == [(i, (200, 418, 200)[i % 3])
                                                   for i in range(12)]
    assert all(r["error"] is None for r in rs)
    for proto in ("http2", "grpc", "tcp"):
        bad = subprocess.run([POD_PYTHON, "-I", str(pod["dir"] / "probe.py"), "--once"],
                             input=json.dumps({"url": f"{h}/", "protocol": proto,
                                               "interleave": [f"{h}/x"]}) + "\n",
                             capture_output=True, text=True, timeout=10)
        assert "interleave is for protocol http only" in json.loads(bad.stdout)["error"]


def test_probe_order_carries_interleave_for_http_only():
    from meshproof.probe import order
    from meshproof.targets.model import ProbeOrder
    o = order("http://a/", 4, interleave=("http://b/",))
    assert o.to_wire()["interleave"] == ["http://b/"]
    assert "interleave" not in order("http://a/", 4).to_wire()
    with pytest.raises(ValueError, match="interleave is for protocol http only"):
        ProbeOrder("http://a/", protocol="grpc", interleave=("http://b/",))


def test_probe_names_failures_per_protocol(pod):
    dead = _free_ports(1)[0]
    for proto, url in (("tcp", f"tcp://127.0.0.1:{dead}"), ("http2", f"http://127.0.0.1:{dead}/"),
                       ("grpc", f"http://127.0.0.1:{dead}/a.B/C")):
        r = probe(pod, {"url": url, "protocol": proto})[0]
        assert (r["status"], r["error"]) == (0, "refused"), r
    # h2c prior knowledge against a TCP echo: the banner is no HTTP/2 frame.
    r = probe(pod, {"url": f"http://127.0.0.1:{pod['tcp']}/", "protocol": "http2",
                    "timeout_s": 2})[0]
    assert r["status"] == 0 and r["error"] in ("other", "closed", "timeout"), r
    bad = subprocess.run([POD_PYTHON, "-I", str(pod["dir"] / "probe.py"), "--once"],
                         input=json.dumps({"url": "http://x/", "protocol": "sctp"}) + "\n",
                         capture_output=True, text=True, timeout=10)
    assert "protocol must be" in json.loads(bad.stdout)["error"]


def test_probe_grpc_against_grpcio_server(pod):
    """The probe's gRPC client against grpcio's server: status, metadata, denial."""
    def echo(req, ctx):
        ctx.send_initial_metadata([("x-version", "grpcio")])
        return b"\x0a\x05hello"

    def deny(req, ctx):
        ctx.abort(grpc.StatusCode.PERMISSION_DENIED, "not you")

    srv = grpc.server(futures.ThreadPoolExecutor(2))
    srv.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.Svc", {
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Deny": grpc.unary_unary_rpc_method_handler(deny)})])
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        ok = probe(pod, {"url": f"http://127.0.0.1:{port}/t.Svc/Echo", "protocol": "grpc",
                         "count": 3, "fresh": False})
        assert [(r["status"], r["grpc_status"], r["messages"], r["headers"]["x-version"],
                 r["body"]) for r in ok] == [(200, 0, 1, "grpcio", "hello")] * 3
        no = probe(pod, {"url": f"http://127.0.0.1:{port}/t.Svc/Deny", "protocol": "grpc"})[0]
        assert (no["grpc_status"], no["grpc_message"], no["messages"]) == (7, "not you", 0)
    finally:
        srv.stop(0)


def test_probe_result_semantics():
    """``ok`` and ``denied`` per protocol, as checks judge them."""
    from meshproof.probe import all_ok, denied
    from meshproof.targets.model import ProbeResult
    grpc_ok = ProbeResult(200, 1, protocol="grpc", grpc_status=0, messages=1)
    grpc_denied = ProbeResult(200, 1, protocol="grpc", grpc_status=7)
    tcp_ok = ProbeResult(0, 1, protocol="tcp", messages=1, banner="meshproof-echo")
    tcp_closed = ProbeResult(0, 1, error="closed", protocol="tcp", banner="meshproof-echo")
    assert all_ok([grpc_ok, tcp_ok]) and not all_ok([grpc_denied])
    assert denied(grpc_denied) and not denied(grpc_ok)
    assert denied(tcp_closed) and not denied(tcp_ok)
    assert (grpc_denied.outcome, tcp_ok.outcome) == ("grpc-7", "echoed")
