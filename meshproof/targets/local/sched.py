"""Scheduling of the lab's pod processes while a load test measures (the load harness's
``Target.prioritize_pods``): every thread of every process in the given namespaces' pods.

Why per thread: Linux schedules threads, and Envoy's worker is one. Why at all: with
other labs and CPU burners on both cores, the sidecars' fair share fell below what the
offered rate needs and the queue that grew was the machine's, not the mesh's
(docs/load.md). Both paths' pods get the same class, so it cancels in the difference.
"""

from __future__ import annotations

import os

from meshproof.targets.local import netns


def pod_pids(namespaces: list[str]) -> list[int]:
    """Every process in these namespaces' pods."""
    return [pid for ns in netns.list_ours()
            if any(ns.startswith(netns.pod_netns(n, "")) for n in namespaces)
            for pid in netns.pids_in(ns)]


def threads(pids: list[int]) -> list[int]:
    out: list[int] = []
    for pid in pids:
        try:
            out += [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
    return out


def prioritize(namespaces: list[str], nice: int, realtime: bool) -> str:
    """SCHED_FIFO 1 (``realtime``) or ``nice`` for every thread; what was done ("" when
    nothing could be: not root, or no pods)."""
    if os.geteuid() != 0:
        return ""
    done = 0
    for tid in threads(pod_pids(namespaces)):
        try:
            if realtime:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(1))
            else:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            done += 1
        except OSError:
            pass  # gone meanwhile
    return f"{done} pod threads at " + ("SCHED_FIFO 1" if realtime else f"nice {nice}") \
        if done else ""


def restore(namespaces: list[str]) -> None:
    """Back to SCHED_OTHER, nice 0."""
    if os.geteuid() != 0:
        return
    for tid in threads(pod_pids(namespaces)):
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, 0)
        except OSError:
            pass


def pin(namespaces: list[str], cpu: int) -> int:
    """Pin every process of these pods to one CPU (cross-vCPU wake-ups cost ~26 us each
    on these VMs); returns how many."""
    pids = pod_pids(namespaces)
    for pid in pids:
        try:
            os.sched_setaffinity(pid, {cpu})
        except OSError:
            pass
    return len(pids)
