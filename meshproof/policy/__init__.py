"""Policy files (SMI, Gateway API GAMMA, meshproof's own kinds) -> mesh-neutral intents.

``load_files`` / ``load_text`` / ``load_stream`` read YAML and return the intents a mesh
adapter applies (``ReferenceMesh.apply_all``: one version). A load is all or
nothing: any error raises ``PolicyError`` naming file, document, resource
and field, and returns no intents. The kinds and mapping decisions are
documented in docs/policy.md.
"""

from meshproof.policy.errors import PolicyError, Problem
from meshproof.policy.loader import (load_any, load_files, load_stream, load_text,
                                     supported_kinds)

__all__ = ["PolicyError", "Problem", "load_any", "load_files", "load_stream", "load_text", "supported_kinds"]
