"""istiod's per-proxy sync status: has every affected proxy ACKed what istiod sent?

Two shapes are read, both what istiod itself answers:
- the monitoring port's ``/debug/syncz`` (JSON list, one SyncStatus per proxy:
  ``proxy`` = ``POD.NAMESPACE``, ``cluster_sent``/``cluster_acked``,
  ``listener_*``, ``route_*``, ``endpoint_*``, ``extensionconfig_*`` nonces);
- the xDS debug type ``istio.io/debug/syncz`` (envoy.service.status.v3
  ClientConfig per proxy: ``node.id`` and ``genericXdsConfigs[].configStatus``,
  where istiod writes SYNCED exactly when the acked nonce equals the sent one).

Programmed, per proxy: every type's acked nonce equals its sent nonce (or
SYNCED), and at least one sent nonce differs from the snapshot taken before
the apply, so a proxy that simply had not been pushed yet does not count.
Pure parsing here; the adapter fetches the document through the API server's
service proxy (``services/proxy`` on istiod's port 15014).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TYPES = ("cluster", "listener", "route", "endpoint", "extensionconfig")


@dataclass(frozen=True)
class ProxySync:
    proxy: str
    #: type -> (sent nonce, acked nonce); for ClientConfig: (status, "SYNCED" or status)
    types: dict[str, tuple[str, str]]

    @property
    def synced(self) -> bool:
        return all(sent == acked for sent, acked in self.types.values())

    def unsynced(self) -> list[str]:
        return [t for t, (s, a) in self.types.items() if s != a]

    def sent(self) -> dict[str, str]:
        return {t: s for t, (s, _) in self.types.items()}


def parse(doc: Any) -> dict[str, ProxySync]:
    """Either shape -> proxy id (``POD.NAMESPACE``) -> its sync state."""
    out: dict[str, ProxySync] = {}
    if isinstance(doc, dict) and "resources" in doc:
        doc = doc["resources"]
    for item in doc or ():
        if not isinstance(item, dict):
            continue
        if "proxy" in item:  # /debug/syncz SyncStatus
            types = {}
            for t in TYPES:
                sent, acked = item.get(f"{t}_sent", ""), item.get(f"{t}_acked", "")
                if sent or acked:
                    types[t] = (str(sent), str(acked))
            out[str(item["proxy"])] = ProxySync(str(item["proxy"]), types)
        elif "node" in item:  # ClientConfig from the istio.io/debug/syncz xDS type
            node = str((item.get("node") or {}).get("id", ""))
            proxy = node.split("~")[2] if node.count("~") >= 3 else node
            types = {}
            for g in item.get("genericXdsConfigs") or item.get("generic_xds_configs") or ():
                t = str(g.get("typeUrl") or g.get("type_url") or "").rsplit(".", 1)[-1]
                status = str(g.get("configStatus") or g.get("config_status") or "UNKNOWN")
                version = str(g.get("versionInfo") or g.get("version_info") or status)
                types[t] = (version, version if status == "SYNCED" else status)
            out[proxy] = ProxySync(proxy, types)
    return out


def pending(before: dict[str, ProxySync], now: dict[str, ProxySync],
            proxies: list[str]) -> dict[str, str]:
    """Proxies not yet programmed, with why ({} = all programmed)."""
    why: dict[str, str] = {}
    for p in proxies:
        cur = now.get(p)
        if cur is None:
            why[p] = "not connected to istiod"
            continue
        if not cur.synced:
            why[p] = "not ACKed: " + ", ".join(cur.unsynced())
            continue
        old = before.get(p)
        if old is not None and old.sent() == cur.sent():
            why[p] = "no push since the change"
    return why
