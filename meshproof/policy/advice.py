"""Warnings about policy that loads fine but will not do what it seems to.

A TrafficTarget does not switch access control on (docs/policy.md): where no
AccessMode ``smi`` covers its destination, it allows what is allowed anyway.
That is a deliberate mapping, but a silent no-op is a trap, so ``apply``
says so.
"""

from __future__ import annotations

from meshproof.intent import AccessMode, AccessRule, Policy


def _smi_in(modes: tuple[AccessMode, ...], namespace: str) -> bool:
    """Namespace over mesh, as AccessMode defines."""
    by_ns = {m.namespace: m.mode for m in modes}
    return by_ns.get(namespace, by_ns.get("", "permissive")) == "smi"


def unenforced_rules(policy: Policy) -> list[AccessRule]:
    """AccessRules whose destination namespace does not deny by default."""
    return [r for r in policy.access_rules
            if not _smi_in(policy.access_modes, r.destination.split("/")[0])]
