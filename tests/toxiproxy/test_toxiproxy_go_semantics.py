"""Where a client can tell the Go server from ours: populate, strict JSON types, valid JSON out, Expect."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from toxtcp import TcpServer, port_of

from meshproof.toxiproxy.client import ToxiproxyClient


def _strict_json(text: str) -> object:
    """Parse as a strict JSON parser would: NaN and Infinity are not JSON."""

    def refuse(name: str) -> object:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bad(resp: httpx.Response, detail: str) -> None:
    assert resp.status_code == 400, resp.text
    assert resp.json() == {"error": f"bad request body: {detail}", "status": 400}


# ---------------------------------------------------------------- populate


def test_populate_localhost_listen_keeps_proxy_toxics_and_connections(
    http: httpx.Client, client: ToxiproxyClient, echo_server: TcpServer
) -> None:
    """Go compares the resolved listen address: localhost:P is the running 127.0.0.1:P, so nothing restarts."""
    port = _free_port()
    client.populate([{"name": "p", "listen": f"127.0.0.1:{port}", "upstream": echo_server.addr}])
    client.add_toxic("p", "latency", {"latency": 1}, name="kept")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as live:
        live.sendall(b"a")
        assert live.recv(1) == b"a"
        again = client.populate([{"name": "p", "listen": f"localhost:{port}", "upstream": echo_server.addr}])
        assert again[0]["listen"] == f"127.0.0.1:{port}"
        assert [t["name"] for t in again[0]["toxics"]] == ["kept"]
        live.sendall(b"b")
        assert live.recv(1) == b"b"  # the live connection survived


def test_populate_error_reports_what_was_applied(http: httpx.Client, echo_server: TcpServer) -> None:
    """Go applies entries in order and answers the error with the proxies applied before it."""
    ok = {"name": "ok", "listen": "127.0.0.1:0", "upstream": echo_server.addr}
    taken = {"name": "taken", "listen": echo_server.addr, "upstream": echo_server.addr}
    r = http.post("/populate", json=[ok, taken])
    assert r.status_code == 500 and "address already in use" in r.json()["error"]
    assert [p["name"] for p in r.json()["proxies"]] == ["ok"]
    assert list(http.get("/proxies").json()) == ["ok"]


def test_populate_empty_array_lists_null(http: httpx.Client) -> None:
    r = http.post("/populate", json=[])
    assert r.status_code == 201 and r.json() == {"proxies": None}


def test_proxy_index_sorted_by_name(client: ToxiproxyClient, echo_server: TcpServer) -> None:
    for name in ("b", "c", "a"):
        client.create_proxy(name, echo_server.addr)
    assert list(client.proxies()) == ["a", "b", "c"]  # Go marshals a map: sorted keys


# ---------------------------------------------------------------- types


@pytest.mark.parametrize(
    "method,path,body,where",
    [
        ("POST", "/proxies", {"name": "p", "upstream": "127.0.0.1:1", "enabled": "false"}, "Proxy.enabled"),
        ("POST", "/proxies", {"name": 7, "upstream": "127.0.0.1:1"}, "Proxy.name"),
        ("POST", "/populate", [{"name": "p", "upstream": "127.0.0.1:1", "enabled": "false"}], ".enabled"),
    ],
)
def test_proxy_fields_must_have_their_json_type(http: httpx.Client, method: str, path: str, body: object, where: str) -> None:
    """Go's decoder refuses "false" for a bool (a truthy string would create an enabled proxy)."""
    r = http.request(method, path, json=body)
    go_type = "string" if where.endswith("name") else "bool"
    what = "number" if where.endswith("name") else "string"
    detail = f"json: cannot unmarshal {what} into Go struct field {where} of type {go_type}"
    if path == "/populate":
        assert r.status_code == 400 and r.json() == {"error": f"bad request body: {detail}", "status": 400, "proxies": None}
    else:
        _bad(r, detail)
    assert http.get("/proxies").json() == {}


def test_proxy_update_enabled_string_400(http: httpx.Client, client: ToxiproxyClient, echo_server: TcpServer) -> None:
    client.create_proxy("p", echo_server.addr)
    _bad(http.patch("/proxies/p", json={"enabled": "false"}), "json: cannot unmarshal string into Go struct field Proxy.enabled of type bool")
    assert client.get_proxy("p")["enabled"] is True


@pytest.mark.parametrize(
    "literal,what",
    [("100.0", "number 100.0"), ("1e2", "number 1e2"), ("9223372036854775808", "number 9223372036854775808"), ('"100"', "string")],
)
def test_int64_attributes_refuse_what_go_refuses(http: httpx.Client, client: ToxiproxyClient, echo_server: TcpServer, literal: str, what: str) -> None:
    client.create_proxy("p", echo_server.addr)
    body = '{"type": "latency", "attributes": {"latency": %s}}' % literal
    r = http.post("/proxies/p/toxics", content=body.encode())
    _bad(r, f"json: cannot unmarshal {what} into Go struct field LatencyToxic.attributes.latency of type int64")
    assert client.toxics("p") == []


def test_int64_attribute_bounds_accepted(client: ToxiproxyClient, echo_server: TcpServer) -> None:
    client.create_proxy("p", echo_server.addr)
    made = client.add_toxic("p", "limit_data", {"bytes": 2**63 - 1})
    assert made["attributes"] == {"bytes": 2**63 - 1}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "1e39"])
def test_toxicity_out_of_float32_or_not_json_400_and_listings_stay_json(
    http: httpx.Client, client: ToxiproxyClient, echo_server: TcpServer, literal: str
) -> None:
    client.create_proxy("p", echo_server.addr)
    r = http.post("/proxies/p/toxics", content=b'{"type": "latency", "toxicity": %s}' % literal.encode())
    assert r.status_code == 400 and r.json()["error"].startswith("bad request body: "), r.text
    client.add_toxic("p", "latency", name="fine")
    r = http.patch("/proxies/p/toxics/fine", content=b'{"toxicity": %s}' % literal.encode())
    assert r.status_code == 400, r.text
    for path in ("/proxies", "/proxies/p", "/proxies/p/toxics", "/proxies/p/toxics/fine"):
        _strict_json(http.get(path).text)


def test_toxicity_is_a_float32(client: ToxiproxyClient, echo_server: TcpServer) -> None:
    client.create_proxy("p", echo_server.addr)
    assert client.add_toxic("p", "latency", toxicity=0.123456789)["toxicity"] == 0.12345679


def test_stream_keeps_the_clients_spelling(client: ToxiproxyClient, echo_server: TcpServer) -> None:
    """Go stores the stream as given and names the toxic from it; the direction is case-insensitive."""
    port = port_of(client.create_proxy("p", echo_server.addr)["listen"])
    made = client.add_toxic("p", "latency", {"latency": 80}, stream="UPSTREAM")
    assert made["name"] == "latency_UPSTREAM" and made["stream"] == "UPSTREAM"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        t0 = time.perf_counter()
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        assert time.perf_counter() - t0 >= 0.075


def test_toxic_name_taken_wins_over_bad_attributes(http: httpx.Client, client: ToxiproxyClient, echo_server: TcpServer) -> None:
    """Go's AddToxicJson checks the name before it decodes the attributes."""
    client.create_proxy("p", echo_server.addr)
    client.add_toxic("p", "latency", name="t")
    r = http.post("/proxies/p/toxics", json={"type": "latency", "name": "t", "attributes": {"latency": 1.5}})
    assert r.status_code == 409 and r.json()["error"] == "toxic already exists"


# ---------------------------------------------------------------- Expect


def _api_socket(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def test_expect_100_continue_answered_at_once(tox_server, echo_server: TcpServer) -> None:  # type: ignore[no-untyped-def]
    """Go's net/http sends 100 Continue when the handler reads the body; curl otherwise waits 1 s for it."""
    body = json.dumps({"name": "cont", "upstream": echo_server.addr, "listen": "127.0.0.1:0"}).encode()
    head = (
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    with _api_socket(tox_server.url) as s:
        s.settimeout(0.3)  # well under the 1 s a client waits before sending the body anyway
        t0 = time.perf_counter()
        s.sendall(head)
        interim = s.recv(64)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n" and time.perf_counter() - t0 < 0.3
        s.settimeout(5)
        s.sendall(body)
        final = s.recv(65536)
    assert final.startswith(b"HTTP/1.1 201 "), final
    ToxiproxyClient(tox_server.url).delete_proxy("cont")


def test_expect_other_417(tox_server) -> None:  # type: ignore[no-untyped-def]
    with _api_socket(tox_server.url) as s:
        s.sendall(b"POST /populate HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 2\r\n\r\n[]")
        reply = s.recv(65536)
        assert reply.startswith(b"HTTP/1.1 417 ") and b"Connection: close" in reply
        assert s.recv(10) == b""
