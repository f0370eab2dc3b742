"""Network namespaces: the routed fabric and one namespace per pod.

Shape: every pod is a netns whose ``eth0`` is one end of a veth pair; the
other end lives in the fabric netns (``mp-fabric``). The fabric routes between pods
(a /32 route per pod, the gateway address 198.18.0.1 on every fabric-side
veth, Calico-style). We route instead of bridging because service VIPs are
DNATed in the fabric: with a bridge, replies between pods on one L2 segment
would skip conntrack unless br_netfilter were loaded, and that module
changes the host. A routed fabric gives kube-proxy semantics while the host's
own namespace stays untouched: no address, route or rule is ever added there.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from meshproof import paths
from meshproof.targets.local.shell import run

#: Every name we create starts with this; a ``MESHPROOF_INSTANCE`` lab uses
#: ``mp<instance>-``, which the default lab's ``mp-`` never matches.
PREFIX = f"mp{paths.INSTANCE}-"
FABRIC = f"{PREFIX}fabric"
GATEWAY = "198.18.0.1"
POD_NET = ipaddress.ip_network("198.18.0.0/16")
VIP_NET = ipaddress.ip_network("198.19.0.0/16")
NETNS_ETC = Path("/etc/netns")


def pod_ip(index: int) -> str:
    """The address of the ``index``-th pod (0-based): 198.18.1.2 onwards."""
    if not 0 <= index < 250 * 250:
        raise ValueError(f"pod index out of range: {index}")
    return f"198.18.{1 + index // 250}.{2 + index % 250}"


def vip(index: int) -> str:
    """The VIP of the ``index``-th service (0-based): 198.19.0.10 onwards."""
    if not 0 <= index < 250 * 240:
        raise ValueError(f"service index out of range: {index}")
    return f"198.19.{index // 240}.{10 + index % 240}"


def pod_netns(namespace: str, name: str) -> str:
    """The netns of pod ``namespace/name`` (the lab's one naming rule)."""
    return f"{PREFIX}{namespace}-{name}"


def veth_name(index: int) -> str:
    return f"mpv{index}"  # IFNAMSIZ is 16: keep short


def exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def list_ours() -> list[str]:
    d = Path("/run/netns")
    return sorted(p.name for p in d.iterdir() if p.name.startswith(PREFIX)) if d.exists() else []


def sysctl(netns: str, key: str, value: str) -> None:
    run(["sysctl", "-q", "-w", f"{key}={value}"], netns=netns)


def create_fabric() -> None:
    run(["ip", "netns", "add", FABRIC])
    run(["ip", "link", "set", "lo", "up"], netns=FABRIC)
    # Per-netns sysctls: forwarding inside the fabric only; loose reverse-path
    # filtering because the gateway address sits on every veth.
    sysctl(FABRIC, "net.ipv4.ip_forward", "1")
    sysctl(FABRIC, "net.ipv4.conf.all.rp_filter", "0")
    sysctl(FABRIC, "net.ipv4.conf.default.rp_filter", "0")
    # VIPs are "local" to the fabric: a VIP with no endpoints (no DNAT) lands
    # in INPUT and is refused there, as kube-proxy does, instead of "no route".
    run(["ip", "route", "add", "local", str(VIP_NET), "dev", "lo"], netns=FABRIC)


def create_pod(netns: str, index: int, hosts: str) -> str:
    """Create a pod's netns wired to the fabric; returns its IP."""
    ip = pod_ip(index)
    veth = veth_name(index)
    write_hosts(netns, hosts)
    run(["ip", "netns", "add", netns])
    run(["ip", "-n", FABRIC, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
         "netns", netns])
    run(["ip", "-n", FABRIC, "addr", "add", f"{GATEWAY}/32", "dev", veth])
    run(["ip", "-n", FABRIC, "link", "set", veth, "up"])
    run(["ip", "-n", FABRIC, "route", "add", f"{ip}/32", "dev", veth])
    run(["ip", "-n", netns, "link", "set", "lo", "up"])
    run(["ip", "-n", netns, "addr", "add", f"{ip}/32", "dev", "eth0"])
    run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    run(["ip", "-n", netns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link"])
    run(["ip", "-n", netns, "route", "add", "default", "via", GATEWAY, "dev", "eth0"])
    return ip


def write_hosts(netns: str, hosts: str) -> None:
    """Names resolve through ``/etc/netns/NAME/hosts``: ``ip netns exec`` bind-mounts it."""
    d = NETNS_ETC / netns
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts").write_text(hosts)
    (d / "hosts").chmod(0o644)


def delete(netns: str) -> None:
    """Delete a netns (its veth pair goes with it) and its /etc/netns dir."""
    if exists(netns):
        run(["ip", "netns", "del", netns], check=False)
    d = NETNS_ETC / netns
    if d.exists():
        for f in d.iterdir():
            f.unlink()
        d.rmdir()


def pids_in(netns: str) -> list[int]:
    if not exists(netns):
        return []
    out = run(["ip", "netns", "pids", netns], check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]
