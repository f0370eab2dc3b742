"""What the kube target honours, decided from preflight, and why the rest is missing.

Declared only what it really does: probes by exec (plain and with client TLS
files placed in the pod), files, scale, pod kill (delete; the Deployment
brings a new pod, which takes the old one's ordinal), partition of two pods
(NetworkPolicy, if permitted), the node's clock tick (read in a pod), and
the mesh's control plane as a component (scaled to 0 and back) only with the
opt-in flag. Not offered, each with its reason (checks needing them are
skipped): packet capture (an ephemeral tcpdump container is not implemented
yet, and restricted PodSecurity forbids the capabilities it needs) and a
probe from the sidecar's identity (Istio's proxy image has no Python).
"""

from __future__ import annotations

BASE = frozenset({"probe", "probe-tls", "put-file", "scale", "kill-pod", "clock", "load"})

MISSING_REASONS = {
    "capture": "the kube target does not capture packets yet (an ephemeral debug "
               "container with tcpdump and NET_RAW is not implemented; restricted "
               "PodSecurity forbids it)",
    "probe-in-sidecar": "the kube target cannot send as the sidecar's identity (the mesh's "
                        "proxy image has no Python to run the probe)",
    "sidecar-usage": "the kube target does not measure the sidecar's CPU: the kubelet's "
                     "and metrics-server's figures are sampled every 10-15 s (cAdvisor "
                     "housekeeping), as coarse as a whole load phase",
    "pin-cpu": "the kube target does not pin pods to CPUs (use the kubelet's static CPU "
               "manager policy and Guaranteed pods for that)",
    "components": "stopping the mesh's control plane needs the opt-in flag "
                  "MESHPROOF_ALLOW_COMPONENT_OUTAGE=1 (meshproof chaos "
                  "--allow-component-outage)",
}


def decide(denied_optional: dict[str, str], *, component_outage: bool,
           has_control_plane: bool, chaos_mesh: bool = False,
           chaos_mesh_why: str = "") -> tuple[frozenset[str], dict[str, str]]:
    """The capabilities and, for each missing one, why. ``block`` is Chaos Mesh's
    NetworkChaos partition when it is installed and permitted (enforced by its daemon,
    whatever the CNI), else two NetworkPolicies (enforced only by a CNI that does)."""
    caps = set(BASE)
    why = {k: v for k, v in MISSING_REASONS.items()}
    if chaos_mesh or "block" not in denied_optional:
        caps.add("block")
    else:
        why["block"] = (f"partitions need NetworkPolicies: {denied_optional['block']}; "
                        f"and {chaos_mesh_why or 'Chaos Mesh is not usable'}")
    if component_outage and has_control_plane:
        caps.add("components")
        why.pop("components")
    elif not has_control_plane:
        why["components"] = "no mesh control plane to stop (--mesh none)"
    return frozenset(caps), why
