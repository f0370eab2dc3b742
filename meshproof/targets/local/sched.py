"""Scheduling of a lab's pod processes while a measurement runs (the load tests).

Why: beside two CPU burners and other labs (load average 20+ on 2 cores) the
sidecars' fair share fell below what 1000 rps need, and the queue that grew
was the machine's, not the mesh's (measured: achieved 300-900 rps, seconds of
latency, at nice 0 and still at nice -10). Linux schedules threads, so every
thread of every process (Envoy's worker too) gets the class.
"""

from __future__ import annotations

import os


def threads(pids: list[int]) -> list[int]:
    out: list[int] = []
    for pid in pids:
        try:
            out += [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue  # gone meanwhile
    return out


def prioritize(pids: list[int], realtime: bool, nice: int) -> str:
    """SCHED_FIFO priority 1 (``realtime``) or ``nice`` for every thread; what was done.

    Real time is bounded by the offered load (the pods only answer requests:
    ~0.5 core at 1000 rps), by the caller (it asks for it only at low rates)
    and by the kernel's RT throttling; the generator runs one priority above.
    """
    done = 0
    for tid in threads(pids):
        try:
            if realtime:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(1))
            else:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            done += 1
        except OSError:
            pass
    return f"{done} pod threads at " + ("SCHED_FIFO 1" if realtime else f"nice {nice}")


def restore(pids: list[int]) -> None:
    """Back to SCHED_OTHER, nice 0."""
    for tid in threads(pids):
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, tid, 0)
        except OSError:
            pass
