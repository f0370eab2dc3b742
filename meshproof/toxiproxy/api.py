"""The toxiproxy v2 HTTP API: routes, JSON shapes and status codes of upstream's api.go.

Transport-free: ``Api.handle`` takes a parsed request and returns a
``Response``, so the HTTP layer stays a dumb pipe and the API can be tested
without sockets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from meshproof.toxiproxy import errors as E
from meshproof.toxiproxy.errors import ApiError
from meshproof.toxiproxy.proxy import NetnsFor, Proxy, check_new
from meshproof.toxiproxy.toxics import parse_new_toxic

VERSION = "2.12.0-meshproof"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json(status: int, value: object) -> Response:
    return Response(status, json.dumps(value).encode(), [("Content-Type", "application/json")])


def _error(err: ApiError) -> Response:
    # Go's http.Error: text/plain content type, nosniff, JSON body plus newline.
    return Response(
        err.status,
        (json.dumps(err.body()) + "\n").encode(),
        [("Content-Type", "text/plain; charset=utf-8"), ("X-Content-Type-Options", "nosniff")],
    )


def _plain(status: int, text: str) -> Response:
    return Response(status, text.encode(), [("Content-Type", "text/plain; charset=utf-8")])


def _decode(body: bytes) -> object:
    try:
        return json.loads(body.decode("utf-8")) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise E.BAD_REQUEST_BODY.wrap(str(exc)) from exc


def _require_eof(body: bytes) -> None:
    """Go's Decoder on an empty body fails with EOF."""
    if not body.strip():
        raise E.BAD_REQUEST_BODY.wrap("EOF")


ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"^/reset$"), {"POST": "reset"}),
    (re.compile(r"^/proxies$"), {"GET": "proxy_index", "POST": "proxy_create"}),
    (re.compile(r"^/populate$"), {"POST": "populate"}),
    (
        re.compile(r"^/proxies/(?P<proxy>[^/]+)$"),
        {"GET": "proxy_show", "POST": "proxy_update", "PATCH": "proxy_update", "DELETE": "proxy_delete"},
    ),
    (re.compile(r"^/proxies/(?P<proxy>[^/]+)/toxics$"), {"GET": "toxic_index", "POST": "toxic_create"}),
    (
        re.compile(r"^/proxies/(?P<proxy>[^/]+)/toxics/(?P<toxic>[^/]+)$"),
        {"GET": "toxic_show", "POST": "toxic_update", "PATCH": "toxic_update", "DELETE": "toxic_delete"},
    ),
    (re.compile(r"^/version$"), {"GET": "version"}),
    (re.compile(r"^/metrics$"), {"GET": "metrics"}),
]


class Api:
    """Proxy collection plus handlers; every method runs on the server's event loop."""

    def __init__(self, netns_for: NetnsFor | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.netns_for = netns_for

    async def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        if headers.get("user-agent", "").startswith("Mozilla/"):
            return _plain(403, "User agent not allowed\n")
        path = target.split("?", 1)[0]
        for pattern, methods in ROUTES:
            m = pattern.match(path)
            if m is None:
                continue
            name = methods.get(method)
            if name is None:
                return Response(405)
            args = {k: unquote(v) for k, v in m.groupdict().items()}
            try:
                return await getattr(self, name)(body=body, **args)
            except ApiError as err:
                return _error(err)
        return _plain(404, "404 page not found\n")

    def _get(self, proxy: str) -> Proxy:
        found = self.proxies.get(proxy)
        if found is None:
            raise E.PROXY_NOT_FOUND
        return found

    async def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()

    # ---- proxies
    async def proxy_index(self, body: bytes) -> Response:
        return _json(200, {n: p.with_toxics() for n, p in self.proxies.items()})

    async def proxy_create(self, body: bytes) -> Response:
        _require_eof(body)
        data = _decode(body)
        if not isinstance(data, dict):
            raise E.BAD_REQUEST_BODY.wrap("expected a JSON object")
        check_new(data.get("name"), data.get("upstream"))
        if data["name"] in self.proxies:
            raise E.PROXY_ALREADY_EXISTS
        proxy = Proxy(data["name"], str(data.get("listen") or ""), data["upstream"], self.netns_for)
        if data.get("enabled", True) is not False:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return _json(201, proxy.with_toxics())

    async def proxy_show(self, body: bytes, proxy: str) -> Response:
        return _json(200, self._get(proxy).with_toxics())

    async def proxy_update(self, body: bytes, proxy: str) -> Response:
        p = self._get(proxy)
        _require_eof(body)
        data = _decode(body)
        if not isinstance(data, dict):
            raise E.BAD_REQUEST_BODY.wrap("expected a JSON object")
        listen = data.get("listen", p.listen)
        upstream = data.get("upstream", p.upstream)
        enabled = data.get("enabled", p.enabled)
        if not isinstance(listen, str) or not isinstance(upstream, str) or not isinstance(enabled, bool):
            raise E.BAD_REQUEST_BODY.wrap("listen and upstream must be strings, enabled a boolean")
        await p.update(listen, upstream, enabled)
        return _json(200, p.with_toxics())

    async def proxy_delete(self, body: bytes, proxy: str) -> Response:
        p = self._get(proxy)
        p.stop()
        del self.proxies[proxy]
        return Response(204)

    async def populate(self, body: bytes) -> Response:
        try:
            proxies = await self._populate(body)
        except ApiError as err:
            return _json(err.status, {**err.body(), "proxies": None})
        return _json(201, {"proxies": [p.with_toxics() for p in proxies]})

    async def _populate(self, body: bytes) -> list[Proxy]:
        _require_eof(body)
        data = _decode(body)
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise E.BAD_REQUEST_BODY.wrap("expected a JSON array of proxies")
        names: set[str] = set()
        for i, d in enumerate(data):  # validate everything before changing anything
            check_new(d.get("name"), d.get("upstream"), f" at proxy {i + 1}")
            if d["name"] in names:
                raise E.internal(f'duplicate proxy name "{d["name"]}"')
            names.add(d["name"])
        out = []
        for d in data:
            listen = str(d.get("listen") or "")
            existing = self.proxies.get(d["name"])
            if existing is not None and existing.listen == listen and existing.upstream == d["upstream"]:
                out.append(existing)
                continue
            if existing is not None:
                existing.stop()
                del self.proxies[d["name"]]
            proxy = Proxy(d["name"], listen, d["upstream"], self.netns_for)
            if d.get("enabled") is not False:
                await proxy.start()
            self.proxies[proxy.name] = proxy
            out.append(proxy)
        return out

    async def reset(self, body: bytes) -> Response:
        for p in self.proxies.values():
            await p.start()
            p.reset_toxics()
        return Response(204)

    # ---- toxics
    async def toxic_index(self, body: bytes, proxy: str) -> Response:
        return _json(200, self._get(proxy).toxic_array())

    async def toxic_create(self, body: bytes, proxy: str) -> Response:
        p = self._get(proxy)
        _require_eof(body)
        toxic = p.add_toxic(parse_new_toxic(_decode(body)))
        return _json(200, toxic.to_json())

    async def toxic_show(self, body: bytes, proxy: str, toxic: str) -> Response:
        t = self._get(proxy).toxics.get(toxic)
        if t is None:
            raise E.TOXIC_NOT_FOUND
        return _json(200, t.to_json())

    async def toxic_update(self, body: bytes, proxy: str, toxic: str) -> Response:
        p = self._get(proxy)
        if toxic not in p.toxics:
            raise E.TOXIC_NOT_FOUND
        _require_eof(body)
        return _json(200, p.update_toxic(toxic, _decode(body)).to_json())

    async def toxic_delete(self, body: bytes, proxy: str, toxic: str) -> Response:
        self._get(proxy).remove_toxic(toxic)
        return Response(204)

    # ---- misc
    async def version(self, body: bytes) -> Response:
        return Response(
            200,
            f'{{"version": "{VERSION}"}}\n'.encode(),
            [("Content-Type", "application/json;charset=utf-8")],
        )

    async def metrics(self, body: bytes) -> Response:
        return Response(200, self.render_metrics().encode(), [("Content-Type", "text/plain; version=0.0.4")])

    def render_metrics(self) -> str:
        lines = []
        for kind, help_ in (("received", "received from"), ("sent", "sent to")):
            metric = f"toxiproxy_proxy_{kind}_bytes_total"
            lines.append(f"# HELP {metric} Bytes {help_} the proxy's peers, per link direction.")
            lines.append(f"# TYPE {metric} counter")
            for p in self.proxies.values():
                for direction in ("downstream", "upstream"):
                    labels = ",".join(
                        f'{k}="{_esc(v)}"'
                        for k, v in (
                            ("direction", direction),
                            ("listener", p.listen),
                            ("proxy", p.name),
                            ("upstream", p.upstream),
                        )
                    )
                    lines.append(f"{metric}{{{labels}}} {p.metrics.bytes[(direction, kind)]}")
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
