"""The control plane's input as JSON: registry + policy + sidecar options.

Schema (what ``PUT /state`` takes; every part optional on PUT)::

    {
      "registry": {
        "services": [{"namespace": "bookinfo", "name": "reviews", "vip": "198.19.0.11",
                      "selector": {"app": "reviews"}, "port": 80, "target_port": 9080,
                      "protocol": "http", "extra_ports": [
                          {"port": 7070, "target_port": 7070, "protocol": "grpc", "name": ""}]}],
        "pods": [{"namespace": "bookinfo", "name": "reviews-v1-0", "workload": "reviews-v1",
                  "ip": "198.18.0.11", "labels": {"app": "reviews", "version": "v1"},
                  "service_account": "reviews", "meshed": true, "ready": true, "proxy_uid": 1337,
                  "port": 9080, "ports": [{"port": 9080, "protocol": "http"}, ...]}]
      },
      "policy": {
        "mtls":   [{"mode": "STRICT", "namespace": "bookinfo", "workload": ""}],
        "splits": [{"service": "bookinfo/reviews",
                    "backends": [{"service": "reviews-v1", "weight": 100}]}]
      },
      "options": {"bind_address": "0.0.0.0", "outbound_port": 15001, "inbound_port": 15006,
                  "inbound_match_port": 9080, "app_address": "127.0.0.1", "app_port": 9080,
                  "default_mtls": "PERMISSIVE", "connect_timeout": "1s"},
      "node_options": {"bookinfo/reviews-v1-0": {"inbound_port": 25006}}
    }

``registry`` mirrors ``meshproof.targets.model``; ``policy`` is
``meshproof.intent.Policy.to_dict()``; ``options`` are
``refmesh.xds.SidecarOptions`` (tests move listeners to loopback ports).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from meshproof.errors import ConfigError
from meshproof.intent import Policy
from meshproof.targets.model import Pod, Registry, Service, ServiceSpec
from refmesh.xds import SidecarOptions


def registry_to_dict(reg: Registry) -> dict[str, Any]:
    return {
        "services": [{**dataclasses.asdict(s.spec), "vip": s.vip} for s in reg.services],
        "pods": [dataclasses.asdict(p) for p in reg.pods],
    }


def registry_from_dict(d: dict[str, Any]) -> Registry:
    try:
        services = []
        for s in d.get("services", []):
            s = dict(s)
            vip = str(s.pop("vip"))
            services.append(Service(ServiceSpec.from_dict(s), vip))
        pods = [Pod.from_dict(p) for p in d.get("pods", [])]
    except (TypeError, KeyError) as e:
        raise ConfigError(f"bad registry JSON: {e}", "see refmesh.state for the schema") from e
    return Registry(services, pods)


@dataclass
class MeshState:
    version: int = 0
    registry: Registry = field(default_factory=lambda: Registry([], []))
    policy: Policy = field(default_factory=Policy)
    options: SidecarOptions = field(default_factory=SidecarOptions)
    node_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def options_for(self, node_id: str) -> SidecarOptions:
        extra = self.node_options.get(node_id)
        if not extra:
            return self.options
        return SidecarOptions.from_dict({**self.options.to_dict(), **extra})

    def pod(self, node_id: str) -> Pod | None:
        # An index built once per state: every stream and every push asks, and a scan of
        # the registry per question grew with the square of the sidecar count.
        index = self.__dict__.get("_pods")
        if index is None or index[0] is not self.registry:
            index = (self.registry, {p.key: p for p in self.registry.pods})
            self.__dict__["_pods"] = index
        return index[1].get(node_id)

    def content(self) -> dict[str, Any]:
        """Everything but the version: two states with equal content program the same config."""
        return {"registry": registry_to_dict(self.registry), "policy": self.policy.to_dict(),
                "options": self.options.to_dict(), "node_options": self.node_options}

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, **self.content()}

    def merged(self, patch: dict[str, Any]) -> MeshState:
        """A new state with the parts present in ``patch`` replaced (same version)."""
        unknown = set(patch) - {"registry", "policy", "options", "node_options", "version"}
        if unknown:
            raise ConfigError(f"unknown state keys {sorted(unknown)}",
                              "allowed: registry, policy, options, node_options")
        try:
            return MeshState(
                version=self.version,
                registry=registry_from_dict(patch["registry"]) if "registry" in patch else self.registry,
                policy=Policy.from_dict(patch["policy"]) if "policy" in patch else self.policy,
                options=(SidecarOptions.from_dict(patch["options"]) if "options" in patch
                         else self.options),
                node_options=dict(patch.get("node_options", self.node_options)),
            )
        except (TypeError, ValueError) as e:
            raise ConfigError(f"bad state JSON: {e}", "see refmesh.state for the schema") from e

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MeshState:
        s = cls().merged({k: v for k, v in d.items() if k != "version"})
        s.version = int(d.get("version", 0))
        return s
