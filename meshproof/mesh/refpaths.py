"""Where the reference mesh's processes listen on a lab host (no lab import here).

The adapter (harness side) and the installer (lab side) both need these; keeping
them apart from the installer lets the adapter import without the lab engine.
"""

from __future__ import annotations

from pathlib import Path

from meshproof import paths

MESH_DIR = paths.RUN_DIR / "mesh"
CA_SOCKET = MESH_DIR / "ca.sock"
ADS_SOCKET = MESH_DIR / "ads.sock"
CP_API_SOCKET = MESH_DIR / "cp-api.sock"
#: The node agent's control API (root only): which pod gets which identity.
AGENT_SOCKET = MESH_DIR / "agent.sock"
#: The CA's token book: bootstrap token -> identity (root-only, 0600).
TOKENS = MESH_DIR / "tokens.json"
#: The short-cert-ttl setting while it is in force (``{"ttl_s", "owner_pid", "since"}``):
#: the CA issues under it, and the next run (or ``meshproof down``, with the run dir)
#: undoes one whose owner died.
CERT_TTL = MESH_DIR / "cert-ttl.json"


def sidecar_dir(namespace: str, name: str) -> Path:
    return paths.RUN_DIR / "pods" / namespace / name / "sidecar"


def admin_socket(namespace: str, name: str) -> Path:
    return sidecar_dir(namespace, name) / "admin.sock"
