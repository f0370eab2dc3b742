"""The small helpers around the loader: the lab-listing registry and the apply advice."""

from __future__ import annotations

import pytest

from meshproof.intent import AccessMode, AccessRule, Policy
from meshproof.policy import PolicyError, load_files
from meshproof.policy.advice import unenforced_rules
from meshproof.policy.registry import registry_from
from meshproof.targets.model import Registry, ServiceInfo
from tests.policy.conftest import BAD, EXAMPLES


def test_registry_from_lab_listings_checks_like_the_model(registry: Registry) -> None:
    """A target's typed listings (Pod, ServiceInfo) round-trip into the model."""
    services = [ServiceInfo(s.namespace, s.name, s.vip, s.spec.port, s.spec.target_port,
                            dict(s.spec.selector)) for s in registry.services]
    rebuilt = registry_from(registry.pods, services)
    assert [s.key for s in rebuilt.services] == [s.key for s in registry.services]
    assert load_files([EXAMPLES / "mtlsmode.yaml"], registry=rebuilt)
    with pytest.raises(PolicyError, match="reviews-v4 does not exist"):
        load_files([BAD / "missing-service.yaml"], registry=rebuilt)


def test_traffictarget_without_smi_mode_is_flagged() -> None:
    rule = AccessRule("team-b/t", "team-b/echo", ("team-a/client",))
    assert unenforced_rules(Policy(access_rules=(rule,))) == [rule]
    for modes in ((AccessMode("smi", "team-b"),), (AccessMode("smi"),)):
        assert unenforced_rules(Policy(access_modes=modes, access_rules=(rule,))) == []
    # Namespace over mesh: team-b explicitly permissive under a mesh-wide smi.
    modes = (AccessMode("smi"), AccessMode("permissive", "team-b"))
    assert unenforced_rules(Policy(access_modes=modes, access_rules=(rule,))) == [rule]
