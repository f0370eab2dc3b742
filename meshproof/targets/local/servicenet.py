"""Service VIPs and traffic blocks, programmed in the fabric netns (kube-proxy's job).

The fabric's iptables are ours alone, so each change re-renders both tables
whole and loads them with one ``iptables-restore`` (atomic per table):
no stale chains, no duplicate jumps, nothing half-applied.
"""

from __future__ import annotations

from collections.abc import Iterable

from meshproof.targets.local.netns import FABRIC
from meshproof.targets.local.shell import run
from meshproof.targets.model import Pod, Service


def render(services: Iterable[tuple[Service, list[Pod]]],
           blocks: Iterable[tuple[str, str]]) -> str:
    """The iptables-restore text for the fabric: DNAT per service, DROP per block."""
    nat = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":POSTROUTING ACCEPT [0:0]"]
    filt = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    jumps: list[str] = []
    chains: list[str] = []
    # One chain per service port, as kube-proxy does.
    ports = [(svc, port, eps) for svc, eps in services for port in svc.spec.ports]
    for chain_no, (svc, port, endpoints) in enumerate(ports):
        match = f"-d {svc.vip}/32 -p tcp -m tcp --dport {port.port}"
        if not endpoints:
            # Like kube-proxy: a service without ready endpoints refuses at once.
            filt.append(f"-A INPUT {match} -j REJECT --reject-with tcp-reset")
            continue
        chain = f"MP-SVC-{chain_no}"
        nat.append(f":{chain} - [0:0]")
        jumps.append(f"-A PREROUTING {match} -m comment --comment {svc.key}:{port.port} "
                     f"-j {chain}")
        n = len(endpoints)
        for k, pod in enumerate(endpoints):
            dest = f"-p tcp -j DNAT --to-destination {pod.ip}:{port.target_port}"
            if k < n - 1:  # uniform choice: the k-th rule takes 1/(n-k) of what is left
                chains.append(f"-A {chain} -m statistic --mode random "
                              f"--probability {1.0 / (n - k):.10f} {dest}")
            else:
                chains.append(f"-A {chain} {dest}")
    for a, b in sorted(set(blocks)):
        filt.append(f"-A FORWARD -s {a}/32 -d {b}/32 -j DROP")
        filt.append(f"-A FORWARD -s {b}/32 -d {a}/32 -j DROP")
    return "\n".join(nat + jumps + chains + ["COMMIT"] + filt + ["COMMIT", ""])


def apply(text: str) -> None:
    run(["iptables-restore"], netns=FABRIC, input=text)

