"""How the local capture reads tcpdump's closing statistics."""

from __future__ import annotations

from meshproof.targets.local.capture import kernel_drops


def test_kernel_drops_are_read_from_tcpdumps_closing_lines():
    log = ("tcpdump: listening on mp-v3, link-type EN10MB (Ethernet), snapshot length 262144 "
           "bytes\n32 packets captured\n100 packets received by filter\n68 packets dropped "
           "by kernel\n")
    assert kernel_drops(log) == 68
    assert kernel_drops(log.replace("68 packets dropped", "0 packets dropped")) == 0
    assert kernel_drops("1 packet dropped by kernel\n") == 1
    # A tcpdump killed before its statistics: nothing claimed.
    assert kernel_drops("tcpdump: listening on mp-v3\n") == 0
