"""Per-sidecar xDS resources as plain dicts (Istio/OSM shape), and their protobuf form.

Pure functions of (Registry, Policy, pod): unit-testable, and validated
offline with ``envoy --mode validate`` before any control plane is involved.
"""

from refmesh.xds.resources import (SidecarOptions, SidecarResources, build_node, build_shared,
                                   build_sidecar)

__all__ = ["SidecarOptions", "SidecarResources", "build_node", "build_shared", "build_sidecar"]
