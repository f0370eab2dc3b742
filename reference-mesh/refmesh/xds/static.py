"""Fold one sidecar's dynamic resources into a static bootstrap, for ``envoy --mode validate``.

Why: validating what the control plane would send, offline and without a
control plane, catches a malformed resource in a unit test instead of as a
NACK in a lab run. EDS clusters become STATIC with their endpoints inline,
RDS references become inline route configs.
"""

from __future__ import annotations

import copy
from typing import Any

from refmesh.bootstrap import SidecarPaths, bootstrap
from refmesh.xds.resources import SidecarResources


def static_bootstrap(res: SidecarResources, node_id: str, paths: SidecarPaths) -> dict[str, Any]:
    clusters = []
    for c in res.clusters.values():
        c = copy.deepcopy(c)
        if c.get("type") == "EDS":
            name = c["eds_cluster_config"].get("service_name", c["name"])
            c.pop("eds_cluster_config")
            c["type"] = "STATIC"
            c["load_assignment"] = copy.deepcopy(res.endpoints.get(name, {"cluster_name": name}))
            c["load_assignment"]["cluster_name"] = c["name"]
        clusters.append(c)
    listeners = []
    for lst in res.listeners.values():
        lst = copy.deepcopy(lst)
        for chain in lst.get("filter_chains", []):
            for f in chain.get("filters", []):
                tc = f.get("typed_config", {})
                if "rds" in tc:
                    tc["route_config"] = copy.deepcopy(res.routes[tc.pop("rds")["route_config_name"]])
        listeners.append(lst)
    return bootstrap(node_id, paths, static_listeners=listeners, static_clusters=clusters,
                     dynamic=False)
