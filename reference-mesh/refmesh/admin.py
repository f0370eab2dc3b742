"""A tiny client for Envoy's admin API on its ``pipe`` Unix socket.

Why: the harness must read a sidecar's state (ready, certs, config dump,
warming counters) without sending a byte over the pod network.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from refmesh import unixhttp


class AdminError(Exception):
    pass


class EnvoyAdmin:
    def __init__(self, socket_path: str | Path, timeout: float = 5.0) -> None:
        self.path = str(socket_path)
        self.timeout = timeout

    def get(self, url: str) -> bytes:
        status, body = unixhttp.request(self.path, "GET", url, timeout=self.timeout)
        if status != 200:
            raise AdminError(f"Envoy admin {url} answered {status}: {body[:300]!r}")
        return body

    def post(self, url: str) -> bytes:
        status, body = unixhttp.request(self.path, "POST", url, body=b"", timeout=self.timeout)
        if status != 200:
            raise AdminError(f"Envoy admin POST {url} answered {status}: {body[:300]!r}")
        return body

    def ready(self) -> bool:
        """True when Envoy reports LIVE (initial xDS fetch done, nothing blocking init)."""
        try:
            return self.get("/ready").strip() == b"LIVE"
        except (OSError, AdminError):
            return False

    def stats(self, filter_regex: str = "") -> dict[str, int]:
        """Counters and gauges as {name: value} (histograms omitted)."""
        url = "/stats?format=json" + (f"&filter={filter_regex}" if filter_regex else "")
        out: dict[str, int] = {}
        for s in json.loads(self.get(url)).get("stats", []):
            if "value" in s:
                out[s["name"]] = int(s["value"])
        return out

    def config_dump(self, resource: str = "", include_eds: bool = False) -> dict[str, Any]:
        q = []
        if resource:
            q.append(f"resource={resource}")
        if include_eds:
            q.append("include_eds")
        return json.loads(self.get("/config_dump" + ("?" + "&".join(q) if q else "")))

    def certs(self) -> dict[str, Any]:
        return json.loads(self.get("/certs"))

    def cert_uris(self) -> set[str]:
        """SPIFFE URIs of every certificate Envoy currently holds (its own SVIDs)."""
        uris: set[str] = set()
        for c in self.certs().get("certificates", []):
            for chain in c.get("cert_chain", []):
                for san in chain.get("subject_alt_names", []):
                    if "uri" in san:
                        uris.add(san["uri"])
        return uris

    def cert_serials(self) -> set[str]:
        # Envoy pads the hex serial to whole bytes ("026c..."); the agent writes
        # f"{serial:x}" ("26c..."): compare both without leading zeros.
        return {chain.get("serial_number", "").lower().lstrip("0")
                for c in self.certs().get("certificates", []) for chain in c.get("cert_chain", [])}

    def warming(self) -> int:
        """Listeners plus clusters still warming: nonzero means an ACKed config is not live yet."""
        st = self.stats(r"^(listener_manager\.total_listeners_warming|cluster_manager\.warming_clusters)$")
        return st.get("listener_manager.total_listeners_warming", 0) + st.get(
            "cluster_manager.warming_clusters", 0)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return
            time.sleep(0.05)
        raise AdminError(f"Envoy at {self.path} not LIVE after {timeout}s")

    def quit(self) -> None:
        try:
            self.post("/quitquitquit")
        except (OSError, AdminError):
            pass
