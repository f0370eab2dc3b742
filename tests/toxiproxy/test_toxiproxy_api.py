"""One test per API endpoint and error row (docs/toxiproxy.md), via httpx and via the clients."""

from __future__ import annotations

import socket

import httpx
import pytest
import toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from toxtcp import TcpServer, port_of

from meshproof.toxiproxy.client import ToxiproxyClient, ToxiproxyError


def _err(resp: httpx.Response, status: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"error": message, "status": status}


def _mk(http: httpx.Client, name: str, upstream: str, **extra: object) -> dict:
    r = http.post("/proxies", json={"name": name, "listen": "127.0.0.1:0", "upstream": upstream, **extra})
    assert r.status_code == 201, r.text
    return r.json()


# ---------------------------------------------------------------- /proxies


def test_proxy_index_http(http: httpx.Client, echo_server: TcpServer) -> None:
    assert http.get("/proxies").json() == {}
    made = _mk(http, "a", echo_server.addr)
    listed = http.get("/proxies")
    assert listed.status_code == 200
    assert listed.json() == {"a": made}


def test_proxy_index_python(tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    tp.create(upstream=echo_server.addr, name="a")
    proxies = tp.proxies()
    assert list(proxies) == ["a"] and proxies["a"].upstream == echo_server.addr


def test_proxy_create_http_reports_real_port(http: httpx.Client, echo_server: TcpServer) -> None:
    made = _mk(http, "a", echo_server.addr)
    assert set(made) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert made["enabled"] is True and made["toxics"] == []
    port = port_of(made["listen"])
    assert port != 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"ping")
        assert s.recv(4) == b"ping"


def test_proxy_create_python(tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    proxy = tp.create(upstream=echo_server.addr, name="a", enabled=False)
    assert proxy.enabled is False and proxy.listen == "127.0.0.1:0"


def test_proxy_create_duplicate_409(http: httpx.Client, echo_server: TcpServer) -> None:
    _mk(http, "a", echo_server.addr)
    _err(http.post("/proxies", json={"name": "a", "upstream": echo_server.addr}), 409, "proxy already exists")


def test_proxy_create_duplicate_python(tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    tp.create(upstream=echo_server.addr, name="a")
    with pytest.raises(ProxyExists):
        tp.create(upstream=echo_server.addr, name="a")


@pytest.mark.parametrize("field", ["name", "upstream"])
def test_proxy_create_missing_field_400(http: httpx.Client, field: str) -> None:
    body = {"name": "a", "upstream": "127.0.0.1:1"}
    del body[field]
    _err(http.post("/proxies", json=body), 400, f"missing required field: {field}")


def test_proxy_create_bad_body_400(http: httpx.Client) -> None:
    r = http.post("/proxies", content=b"{not json")
    assert r.status_code == 400
    assert r.json()["error"].startswith("bad request body: ") and r.json()["status"] == 400


def test_proxy_create_listen_in_use_500(http: httpx.Client, echo_server: TcpServer) -> None:
    r = http.post("/proxies", json={"name": "a", "listen": echo_server.addr, "upstream": echo_server.addr})
    assert r.status_code == 500
    assert "address already in use" in r.json()["error"]
    assert http.get("/proxies").json() == {}


def test_proxy_show_http(http: httpx.Client, echo_server: TcpServer) -> None:
    made = _mk(http, "a", echo_server.addr)
    r = http.get("/proxies/a")
    assert r.status_code == 200 and r.json() == made


def test_proxy_show_404(http: httpx.Client) -> None:
    _err(http.get("/proxies/nope"), 404, "proxy not found")


def test_proxy_show_python(tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    tp.create(upstream=echo_server.addr, name="a")
    assert tp.get_proxy("a").name == "a"
    assert tp.get_proxy("nope") is None


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_proxy_update_disable_enable(http: httpx.Client, echo_server: TcpServer, method: str) -> None:
    made = _mk(http, "a", echo_server.addr)
    port = port_of(made["listen"])
    live = socket.create_connection(("127.0.0.1", port), timeout=5)
    live.sendall(b"x")
    assert live.recv(1) == b"x"
    r = http.request(method, "/proxies/a", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    assert live.recv(10) == b""  # disabling closed the live connection
    live.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    r = http.request(method, "/proxies/a", json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True


def test_proxy_update_python_down(tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    proxy = tp.create(upstream=echo_server.addr, name="a")
    with proxy.down():
        assert tp.get_proxy("a").enabled is False
    assert tp.get_proxy("a").enabled is True


def test_proxy_update_404_and_bad_body(http: httpx.Client, echo_server: TcpServer) -> None:
    _err(http.patch("/proxies/nope", json={"enabled": False}), 404, "proxy not found")
    _mk(http, "a", echo_server.addr)
    r = http.patch("/proxies/a", content=b"[[")
    assert r.status_code == 400 and r.json()["error"].startswith("bad request body")


def test_proxy_update_upstream(client: ToxiproxyClient, echo_server: TcpServer) -> None:
    client.create_proxy("a", "127.0.0.1:1")
    updated = client.update_proxy("a", upstream=echo_server.addr)
    assert updated["upstream"] == echo_server.addr and updated["enabled"] is True


def test_proxy_delete(http: httpx.Client, tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    _mk(http, "a", echo_server.addr)
    r = http.delete("/proxies/a")
    assert r.status_code == 204 and r.content == b""
    _err(http.delete("/proxies/a"), 404, "proxy not found")
    proxy = tp.create(upstream=echo_server.addr, name="b")
    assert tp.destroy(proxy) is True and tp.proxies() == {}
    with pytest.raises(NotFound):
        proxy.destroy()


# ---------------------------------------------------------------- /populate


def test_populate_creates_and_keeps(http: httpx.Client, client: ToxiproxyClient, echo_server: TcpServer) -> None:
    port = _free_port()
    body = [{"name": "p1", "listen": f"127.0.0.1:{port}", "upstream": echo_server.addr}]
    r = http.post("/populate", json=body)
    assert r.status_code == 201
    assert [p["name"] for p in r.json()["proxies"]] == ["p1"]
    again = client.populate(body)  # same fields: untouched
    assert again[0]["listen"] == f"127.0.0.1:{port}"


def test_populate_missing_field_400(http: httpx.Client) -> None:
    r = http.post("/populate", json=[{"name": "p1"}])
    assert r.status_code == 400
    assert r.json() == {"error": "missing required field: upstream at proxy 1", "status": 400, "proxies": None}


def test_populate_not_array_400(http: httpx.Client) -> None:
    r = http.post("/populate", json={"name": "p1"})
    assert r.status_code == 400 and r.json()["error"].startswith("bad request body")


def test_populate_duplicate_name_replaces_201(http: httpx.Client, echo_server: TcpServer) -> None:
    """Go's AddOrReplace: the second "p1" (port 0 differs from the first's real port) replaces the first."""
    one = {"name": "p1", "listen": "127.0.0.1:0", "upstream": echo_server.addr}
    r = http.post("/populate", json=[one, one])
    assert r.status_code == 201, r.text
    first, second = r.json()["proxies"]
    assert first["enabled"] is False and second["enabled"] is True  # the replaced one was stopped
    assert http.get("/proxies").json() == {"p1": second}
    with socket.create_connection(("127.0.0.1", port_of(second["listen"])), timeout=5) as s:
        s.sendall(b"ok")
        assert s.recv(2) == b"ok"


def test_populate_python(tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    made = tp.populate([{"name": "p1", "listen": "127.0.0.1:0", "upstream": echo_server.addr}])
    assert [p.name for p in made] == ["p1"]


# ---------------------------------------------------------------- toxics


def test_toxic_index(http: httpx.Client, tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    _mk(http, "a", echo_server.addr)
    assert http.get("/proxies/a/toxics").json() == []
    http.post("/proxies/a/toxics", json={"type": "latency", "stream": "downstream", "attributes": {"latency": 5}})
    http.post("/proxies/a/toxics", json={"type": "latency", "stream": "upstream", "attributes": {"latency": 5}})
    names = [t["name"] for t in http.get("/proxies/a/toxics").json()]
    assert names == ["latency_upstream", "latency_downstream"]  # upstream chain listed first
    assert set(tp.get_proxy("a").toxics()) == set(names)
    _err(http.get("/proxies/nope/toxics"), 404, "proxy not found")


def test_toxic_create_defaults(http: httpx.Client, echo_server: TcpServer) -> None:
    _mk(http, "a", echo_server.addr)
    r = http.post("/proxies/a/toxics", json={"type": "latency", "attributes": {"latency": 7}})
    assert r.status_code == 200
    assert r.json() == {
        "attributes": {"latency": 7, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }


@pytest.mark.parametrize(
    "type_,attrs",
    [
        ("latency", {"latency": 1, "jitter": 2}),
        ("bandwidth", {"rate": 3}),
        ("slow_close", {"delay": 4}),
        ("timeout", {"timeout": 5}),
        ("reset_peer", {"timeout": 6}),
        ("slicer", {"average_size": 7, "size_variation": 1, "delay": 8}),
        ("limit_data", {"bytes": 9}),
    ],
)
def test_toxic_attribute_shapes(client: ToxiproxyClient, echo_server: TcpServer, type_: str, attrs: dict) -> None:
    client.create_proxy("a", echo_server.addr)
    made = client.add_toxic("a", type_, attrs, stream="upstream", toxicity=0.25, name="t")
    assert made == {"attributes": attrs, "name": "t", "type": type_, "stream": "upstream", "toxicity": 0.25}


def test_toxic_create_python(tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    proxy = tp.create(upstream=echo_server.addr, name="a")
    proxy.add_toxic(type="latency", attributes={"latency": 3})
    toxic = proxy.get_toxic("latency_downstream")
    assert toxic.attributes == {"latency": 3, "jitter": 0} and toxic.toxicity == 1


def test_toxic_create_errors(http: httpx.Client, echo_server: TcpServer) -> None:
    _mk(http, "a", echo_server.addr)
    ok = {"type": "latency", "attributes": {"latency": 1}}
    assert http.post("/proxies/a/toxics", json=ok).status_code == 200
    _err(http.post("/proxies/a/toxics", json=ok), 409, "toxic already exists")
    _err(http.post("/proxies/a/toxics", json={"type": "nope"}), 400, "invalid toxic type")
    _err(
        http.post("/proxies/a/toxics", json={"type": "latency", "stream": "sideways"}),
        400,
        "stream was invalid, can be either upstream or downstream",
    )
    _err(http.post("/proxies/nope/toxics", json=ok), 404, "proxy not found")
    bad = http.post("/proxies/a/toxics", content=b"{")
    assert bad.status_code == 400 and bad.json()["error"].startswith("bad request body")


def test_toxic_create_errors_python(tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    proxy = tp.create(upstream=echo_server.addr, name="a")
    proxy.add_toxic(type="latency", attributes={"latency": 1})
    with pytest.raises(ProxyExists):  # toxiproxy-python maps every 409 to ProxyExists
        proxy.add_toxic(type="latency", attributes={"latency": 1})
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="nope")
    tp.destroy(proxy)
    with pytest.raises(NotFound):
        proxy.add_toxic(type="latency")


def test_toxic_show(http: httpx.Client, echo_server: TcpServer) -> None:
    _mk(http, "a", echo_server.addr)
    made = http.post("/proxies/a/toxics", json={"type": "timeout", "name": "t"}).json()
    r = http.get("/proxies/a/toxics/t")
    assert r.status_code == 200 and r.json() == made
    _err(http.get("/proxies/a/toxics/nope"), 404, "toxic not found")
    _err(http.get("/proxies/nope/toxics/t"), 404, "proxy not found")


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_toxic_update_merges(http: httpx.Client, echo_server: TcpServer, method: str) -> None:
    _mk(http, "a", echo_server.addr)
    http.post("/proxies/a/toxics", json={"type": "latency", "name": "l", "attributes": {"latency": 10, "jitter": 3}})
    r = http.request(method, "/proxies/a/toxics/l", json={"attributes": {"latency": 20}, "toxicity": 0.5})
    assert r.status_code == 200
    assert r.json()["attributes"] == {"latency": 20, "jitter": 3} and r.json()["toxicity"] == 0.5
    _err(http.request(method, "/proxies/a/toxics/nope", json={}), 404, "toxic not found")
    _err(http.request(method, "/proxies/nope/toxics/l", json={}), 404, "proxy not found")


def test_toxic_update_client(client: ToxiproxyClient, echo_server: TcpServer) -> None:
    client.create_proxy("a", echo_server.addr)
    client.add_toxic("a", "bandwidth", {"rate": 100}, name="bw")
    assert client.update_toxic("a", "bw", {"rate": 50})["attributes"] == {"rate": 50}
    with pytest.raises(ToxiproxyError) as err:
        client.update_toxic("a", "nope", {"rate": 1})
    assert err.value.status == 404 and err.value.message == "toxic not found"


def test_toxic_delete(http: httpx.Client, tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    _mk(http, "a", echo_server.addr)
    http.post("/proxies/a/toxics", json={"type": "latency", "name": "l"})
    r = http.delete("/proxies/a/toxics/l")
    assert r.status_code == 204 and http.get("/proxies/a/toxics").json() == []
    _err(http.delete("/proxies/a/toxics/l"), 404, "toxic not found")
    proxy = tp.get_proxy("a")
    proxy.add_toxic(type="timeout", name="t")
    assert proxy.destroy_toxic("t") is True and proxy.toxics() == {}


# ---------------------------------------------------------------- misc


def test_reset(http: httpx.Client, tp: toxiproxy.Toxiproxy, echo_server: TcpServer) -> None:
    _mk(http, "a", echo_server.addr, enabled=False)
    _mk(http, "b", echo_server.addr)
    http.post("/proxies/b/toxics", json={"type": "latency"})
    r = http.post("/reset")
    assert r.status_code == 204 and r.content == b""
    state = http.get("/proxies").json()
    assert all(p["enabled"] and p["toxics"] == [] for p in state.values())
    http.patch("/proxies/a", json={"enabled": False})
    assert tp.reset() is True and tp.get_proxy("a").enabled is True


def test_version(http: httpx.Client, tp: toxiproxy.Toxiproxy, client: ToxiproxyClient) -> None:
    r = http.get("/version")
    assert r.status_code == 200 and r.json() == {"version": "2.12.0"}  # exactly Go's: a suffix sorts lower
    assert b'"version"' in tp.version()
    assert client.version() == r.json()["version"]


def test_metrics(http: httpx.Client, echo_server: TcpServer) -> None:
    made = _mk(http, "a", echo_server.addr)
    with socket.create_connection(("127.0.0.1", port_of(made["listen"])), timeout=5) as s:
        s.sendall(b"12345")
        assert s.recv(5) == b"12345"
    r = http.get("/metrics")
    assert r.status_code == 200
    line = next(
        ln for ln in r.text.splitlines() if ln.startswith("toxiproxy_proxy_sent_bytes_total{") and 'direction="upstream"' in ln
    )
    assert 'proxy="a"' in line and line.endswith(" 5")


def test_unknown_route_404_and_wrong_method_405(http: httpx.Client) -> None:
    r = http.get("/nope")
    assert r.status_code == 404 and r.text == "404 page not found\n"
    assert http.delete("/proxies").status_code == 405


def test_browser_user_agent_403(http: httpx.Client) -> None:
    r = http.get("/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert r.status_code == 403 and r.text == "User agent not allowed\n"


def test_keep_alive_and_connection_close(tox_server) -> None:  # type: ignore[no-untyped-def]
    host, port = tox_server.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        req = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(req + req + b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_until_closed(s)
    assert data.count(b"HTTP/1.1 200") == 3
    assert data.count(b"Content-Length:") == 3


def recv_until_closed(s: socket.socket) -> bytes:
    chunks = []
    for _ in range(1000):
        part = s.recv(65536)
        if not part:
            break
        chunks.append(part)
    return b"".join(chunks)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
