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
from meshproof.toxiproxy import gojson
from meshproof.toxiproxy.errors import ApiError
from meshproof.toxiproxy.proxy import NetnsFor, Proxy, ProxySpec, check_new, parse_spec, resolved_listen

# Exactly Go's release string: clients compare versions, and "2.12.0-x" sorts below 2.12.0.
VERSION = "2.12.0"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


def _json(status: int, value: object) -> Response:
    # allow_nan=False: a NaN or infinity must never reach a client as invalid JSON.
    return Response(status, json.dumps(value, allow_nan=False).encode(), [("Content-Type", "application/json")])


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
    """The request's JSON as Go's decoder reads it; an empty body fails with EOF, as Go's Decoder does."""
    if not body.strip():
        raise E.BAD_REQUEST_BODY.wrap("EOF")
    return gojson.loads(body)


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
        # Go marshals a map: keys in sorted order.
        return _json(200, {n: self.proxies[n].with_toxics() for n in sorted(self.proxies)})

    async def proxy_create(self, body: bytes) -> Response:
        spec = parse_spec(_decode(body), "Proxy", ProxySpec("", "", "", True))
        check_new(spec)
        if spec.name in self.proxies:
            raise E.PROXY_ALREADY_EXISTS
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.netns_for)
        if spec.enabled:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return _json(201, proxy.with_toxics())

    async def proxy_show(self, body: bytes, proxy: str) -> Response:
        return _json(200, self._get(proxy).with_toxics())

    async def proxy_update(self, body: bytes, proxy: str) -> Response:
        p = self._get(proxy)
        spec = parse_spec(_decode(body), "Proxy", ProxySpec(p.name, p.listen, p.upstream, p.enabled))
        await p.update(spec.listen, spec.upstream, spec.enabled)
        return _json(200, p.with_toxics())

    async def proxy_delete(self, body: bytes, proxy: str) -> Response:
        p = self._get(proxy)
        p.stop()
        del self.proxies[proxy]
        return Response(204)

    async def populate(self, body: bytes) -> Response:
        """Go's Populate: proxies applied in order; on an error, the ones applied so far (or null) with it."""
        try:
            specs = self._populate_specs(body)
        except ApiError as err:
            return _json(err.status, {**err.body(), "proxies": None})
        done: list[Proxy] = []
        for spec in specs:
            try:
                done.append(await self._add_or_replace(spec))
            except ApiError as err:
                return _json(err.status, {**err.body(), "proxies": [p.with_toxics() for p in done] or None})
        return _json(201, {"proxies": [p.with_toxics() for p in done] or None})

    def _populate_specs(self, body: bytes) -> list[ProxySpec]:
        """Decode and check every entry before changing anything (Go's PopulateJson first loop)."""
        data = _decode(body)
        if not isinstance(data, list):
            raise E.BAD_REQUEST_BODY.wrap("expected a JSON array of proxies")
        # Go's populate struct embeds Proxy in an unnamed struct: errors name it "".
        specs = [parse_spec(d, "", ProxySpec("", "", "", True)) for d in data]
        for i, spec in enumerate(specs):
            check_new(spec, f" at proxy {i + 1}")
        return specs

    async def _add_or_replace(self, spec: ProxySpec) -> Proxy:
        """Go's AddOrReplace: keep a proxy whose listen (resolved) and upstream match, else stop it and start anew.

        A name given twice is no error: the later entry replaces the earlier
        one unless it matches it. A proxy that fails to start leaves the one
        it replaced stopped but listed, as in Go.
        """
        existing = self.proxies.get(spec.name)
        if existing is not None:
            if existing.listen == await resolved_listen(spec.listen) and existing.upstream == spec.upstream:
                return existing
            existing.stop()
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.netns_for)
        if spec.enabled:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def reset(self, body: bytes) -> Response:
        for p in self.proxies.values():
            await p.start()
            p.reset_toxics()
        return Response(204)

    # ---- toxics
    async def toxic_index(self, body: bytes, proxy: str) -> Response:
        return _json(200, self._get(proxy).toxic_array())

    async def toxic_create(self, body: bytes, proxy: str) -> Response:
        toxic = self._get(proxy).add_toxic(_decode(body))
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
