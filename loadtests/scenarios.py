"""Locust scenarios (the locustfile): who calls what, one request per task.

Locust gives the user/task structure, the HTTP client (FastHttpUser, one
keep-alive connection per user) and the ``request`` event. It does not
decide *when* a request is sent: ``loadtests/generator.py`` fires one task
per tick of an open-loop schedule and passes the tick's intended send time
through Locust's request context (``User.context()``), so latency is measured
from when the request should have left, not from when a connection was free.
"""

from __future__ import annotations

from typing import Any

from locust import User, task
from locust.contrib.fasthttp import FastHttpSession

from rawhttp import RawSession


class OpenLoopUser(User):
    """A user whose requests carry their intended send time (ns, perf_counter).

    One user = one keep-alive connection. ``client`` is ``RawSession`` (lean,
    see rawhttp.py) unless ``fasthttp`` is set: then Locust's own
    FastHttpSession, kept selectable so its cost can be measured again.
    """

    abstract = True
    path = "/"
    payload = 0  # request body bytes; 0: GET, else POST with that many bytes
    intended_ns = 0
    fasthttp = False
    network_timeout = 5.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if self.fasthttp:
            self.client: Any = FastHttpSession(
                environment, base_url=self.host, user=self, concurrency=1,
                network_timeout=self.network_timeout,
                connection_timeout=self.network_timeout)
        else:
            self.client = RawSession(environment, self.host, self, self.network_timeout)
        self._body = b"x" * self.payload

    def context(self) -> dict[str, Any]:
        return {"intended_ns": self.intended_ns}

    def close(self) -> None:
        try:
            self.client.close() if not self.fasthttp else self.client.client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    def send(self) -> None:
        if self.fasthttp:
            if self.payload:
                self.client.post(self.path, data=self._body)
            else:
                self.client.get(self.path)
        elif self.payload:
            self.client.request("POST", self.path, self._body)
        else:
            self.client.request("GET", self.path)


class SingleHop(OpenLoopUser):
    """client -> reviews (v1 answers itself): one hop, two sidecars when meshed."""

    abstract = True
    host = "http://reviews"
    path = "/reviews/0"

    @task
    def reviews(self) -> None:
        self.send()


class Productpage(OpenLoopUser):
    """client -> productpage -> (details, reviews): the Bookinfo page's fan-out."""

    abstract = True
    host = "http://productpage"
    path = "/productpage"

    @task
    def page(self) -> None:
        self.send()


class Floor(OpenLoopUser):
    """The generator's own floor: a trivial endpoint on the pod's loopback."""

    abstract = True
    host = "http://127.0.0.1:9080"
    path = "/healthz"

    @task
    def healthz(self) -> None:
        self.send()


SCENARIOS: dict[str, type[OpenLoopUser]] = {
    "single-hop": SingleHop, "productpage": Productpage, "floor": Floor}


def user_class(scenario: str, *, host: str = "", path: str = "", payload: int = 0,
               timeout_s: float = 5.0, fasthttp: bool = False) -> type[OpenLoopUser]:
    """A concrete (non-abstract) user class for one run, with its overrides."""
    base = SCENARIOS[scenario]
    attrs: dict[str, Any] = {"abstract": False, "payload": payload, "fasthttp": fasthttp,
                             "network_timeout": timeout_s}
    if host:
        attrs["host"] = host
    if path:
        attrs["path"] = path
    return type(f"{base.__name__}Run", (base,), attrs)
