"""meshproof's Chaos Toolkit extension: actions, probes, the fault ledger, the runner.

``chaos discover --no-install meshproof.chaos`` lists the activities;
``chaos run chaos/experiments/X.yaml`` runs one against the lab that
``meshproof up --mesh reference`` started. ``meshproof chaos`` (and
``make chaos``) bring up a lab and run them all with reports.
"""

from typing import Any


def discover(discover_system: bool = True) -> Any:
    """Chaos Toolkit's discovery entry point: meshproof's actions and probes."""
    from chaoslib.discovery.discover import (discover_actions, discover_probes,
                                             initialize_discovery_result)

    from meshproof import __version__

    result = initialize_discovery_result("meshproof", __version__, "service-mesh")
    result["activities"].extend(discover_actions("meshproof.chaos.actions"))
    result["activities"].extend(discover_probes("meshproof.chaos.probes"))
    return result
