"""Per-process CPU and memory from /proc: the only CPU figures that hold on this VM.

System-wide counters (/proc/stat, vmstat) read ~100% idle here while Envoys
burn 30% of a core, so the proxies' cost is utime+stime of their own pids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from meshproof.targets.local import netns

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    pid: int
    cpu_s: float
    rss_kb: int
    private_kb: int


def argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") \
            .rstrip("\0").split("\0")
    except OSError:
        return []


def sample(pid: int) -> Sample | None:
    """CPU seconds so far, RSS and private memory of one process (None: gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        rss = priv = 0
        for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
            if ln.startswith("VmRSS:"):
                rss = int(ln.split()[1])
        for ln in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if ln.startswith(("Private_Clean:", "Private_Dirty:")):
                priv += int(ln.split()[1])
        return Sample(pid, cpu, rss, priv)
    except (OSError, IndexError, ValueError):
        return None


def envoy_pid(netns_name: str) -> int | None:
    """The Envoy (sidecar) process inside a pod's netns."""
    for pid in netns.pids_in(netns_name):
        a = argv(pid)
        if a and "envoy" in Path(a[0]).name and "--disable-hot-restart" in a:
            return pid
    return None


def app_pid(netns_name: str) -> int | None:
    """The sample app (workload.py) inside a pod's netns."""
    for pid in netns.pids_in(netns_name):
        if any(x.endswith("workload.py") for x in argv(pid)):
            return pid
    return None
