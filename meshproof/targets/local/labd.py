"""The lab daemon: brings the topology up, supervises it, serves the target API.

``meshproof up`` starts it detached so the lab outlives the command; pytest
starts it too when no lab is running, with ``--owner-pid`` (its own pid):
the lab then dies with its owner, so a SIGKILLed harness leaves nothing
behind and the next run does not queue behind an orphan for 900 s.
Progress goes to stdout as JSON lines until the lab is ready (the starter
renders it), then stdout moves to ``labd.log``. SIGTERM, SIGINT, the
owner's death and the ``down`` call all tear down everything.

The phase (starting, ready, stopping) is written into the machine lock's
file (:mod:`lock`) and answered by ``info``: ``meshproof status`` tells a
lab in the making or in teardown from a killed run's leftovers. The
``down`` call answers once teardown is over, with what it really removed.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import socketserver
import sys
import threading
import traceback
import time
from collections.abc import Callable
from typing import Any

from meshproof import paths
from meshproof.errors import MeshproofError, TargetError
from meshproof.targets.local import cleanup, lock
from meshproof.registry import local_installer
from meshproof.targets.local.lab import Lab
from meshproof.targets.local.rpc import encode_error
from meshproof.topology import TOPOLOGIES, named

SOCKET = paths.RUN_DIR / "labd.sock"
PIDFILE = paths.RUN_DIR / "labd.pid"
LOG = paths.RUN_DIR / "labd.log"

#: The Lab methods the daemon serves (the target interface, the lab's own calls, and
#: ``mesh_call``, relayed to the installed mesh).
METHODS = frozenset({
    "capabilities", "list_pods", "list_services", "scale", "kill_pod", "revive_pod",
    "delete_pod", "components", "stop_component", "start_component", "block", "unblock",
    "capture_start", "capture_stop", "probe", "info", "start_process", "stop_process",
    "put_file", "mesh_call", "clock_tick_s", "restarts",
})


#: How long a ``down`` caller may wait for the teardown it asked for.
DOWN_WAIT_S = 60.0


def emit(event: dict[str, Any]) -> None:
    """One progress line to the starter; a starter that is gone is not an error (its death
    is the owner watch's business, and a broken pipe must not abort a rollback)."""
    try:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def watch_owner(pid: int, on_death: Callable[[], None]) -> None:
    """Call ``on_death`` (from a daemon thread) once process ``pid`` has exited.

    A pidfd names the process itself, not a pid number, so a recycled pid
    cannot fake a living owner. An owner already gone counts as dead.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        on_death()
        return

    def wait() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll(None):
            pass
        os.close(fd)
        on_death()

    threading.Thread(target=wait, name="owner-watch", daemon=True).start()


def teardown(lab: Lab) -> dict[str, list[str]]:
    """Tear the lab down; returns what really went away (present before, gone after)."""
    before = cleanup.leftovers()
    swept = lab.down()
    return cleanup.merge(cleanup.gone(before, cleanup.leftovers()), swept)


class Daemon:
    def __init__(self, lab: Lab, info: dict[str, Any]) -> None:
        self.lab = lab
        self.info = info
        self.phase = "ready"
        self.done = threading.Event()  # teardown asked for
        self.torn_down = threading.Event()  # teardown over: ``removed`` is final
        self.removed: dict[str, list[str]] = {}
        self._answering = 0  # ``down`` callers still to be answered
        self._answering_lock = threading.Lock()
        self.server: socketserver.ThreadingUnixStreamServer | None = None

    def dispatch(self, method: str, args: dict[str, Any]) -> Any:
        if method == "down":
            return self.down(float(args.get("wait_s", DOWN_WAIT_S)))
        if method == "info":
            return {**self.info, "phase": self.phase}
        if method not in METHODS:
            raise MeshproofError(f"unknown lab call {method!r}")
        if self.phase != "ready":
            raise TargetError(f"the lab is {self.phase} (pid {os.getpid()})",
                              "start a new one once it is gone ('meshproof status' tells)")
        return getattr(self.lab, method)(**args)

    def down(self, wait_s: float) -> dict[str, Any]:
        """Ask for teardown and answer when it is over, with what it removed."""
        with self._answering_lock:
            self._answering += 1
        try:
            self.shutdown()
            finished = self.torn_down.wait(wait_s)
            return {"stopped": finished, "removed": self.removed if finished else {}}
        finally:
            with self._answering_lock:
                self._answering -= 1

    def shutdown(self) -> None:
        """Ask for teardown (the main thread does it); the socket keeps answering meanwhile."""
        self.done.set()

    def finish(self, removed: dict[str, list[str]]) -> None:
        """Teardown is over: answer the ``down`` callers, then stop serving.

        The socket answers during teardown (``info`` says "stopping", other
        calls are refused with that reason), so a status query gets an
        answer, not a reset connection.
        """
        self.removed = removed
        self.torn_down.set()
        deadline = time.monotonic() + 5
        while self._answering and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def bind(self) -> None:
        """Bind and listen: once this returns, callers can connect (no bind-listen gap)."""
        daemon = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    try:
                        req = json.loads(line)
                        answer = {"ok": daemon.dispatch(req["method"], req.get("args", {}))}
                    except Exception as exc:  # every error goes back to the caller
                        answer = {"error": encode_error(exc)}
                    self.wfile.write(json.dumps(answer).encode() + b"\n")
                    self.wfile.flush()

        class Server(socketserver.ThreadingUnixStreamServer):
            # Callers fan out (one probe per meshed pod at once): a Unix socket's
            # connect() fails with EAGAIN, not a wait, when the backlog (5) is full.
            request_queue_size = 128

        SOCKET.unlink(missing_ok=True)
        self.server = Server(str(SOCKET), Handler)
        self.server.daemon_threads = True
        os.chmod(SOCKET, 0o600)

    def serve(self) -> None:
        assert self.server is not None
        self.server.serve_forever(poll_interval=0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="meshproof-labd")
    ap.add_argument("--mesh", default="none",
                    help="a mesh with a local installer (meshproof.registry)")
    ap.add_argument("--defect", default="")
    ap.add_argument("--reviews-replicas", type=int, default=1)
    ap.add_argument("--topology", default="fixture", choices=list(TOPOLOGIES))
    ap.add_argument("--load-clients", type=int, default=1)
    ap.add_argument("--owner-pid", type=int, default=None,
                    help="tear the lab down when this process exits (the harness that "
                         "started it); without it the lab lives until 'meshproof down'")
    args = ap.parse_args(argv)
    lab = Lab()
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            return  # already tearing down: let it finish
        stop.set()
        lock.set_phase("stopping")
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.owner_pid is not None:
        def owner_died() -> None:
            try:
                print(f"labd: owner pid {args.owner_pid} exited: tearing the lab down",
                      flush=True)
            except (BrokenPipeError, ValueError):
                pass  # stdout was the dead owner's pipe
            os.kill(os.getpid(), signal.SIGTERM)  # the same path as SIGTERM, in any phase

        watch_owner(args.owner_pid, owner_died)
    try:
        topology = named(args.topology, reviews_replicas=args.reviews_replicas,
                         load_clients=args.load_clients)
        install = local_installer(args.mesh)
        # An installer module may define prestart(lab, defect): its processes start right
        # after the fabric, overlapping the pods' creation (the reference mesh does).
        early = getattr(sys.modules.get(install.__module__), "prestart", None) \
            if install is not None else None
        lab.up(topology,
               progress=lambda msg, done, total: emit(
                   {"progress": msg, "done": done, "total": total}),
               after_fabric=(lambda: early(lab, defect=args.defect)) if early else None)
        if install is not None:
            install(lab, defect=args.defect,
                    progress=lambda msg, d, t: emit({"progress": msg, "done": d, "total": t}))
    except MeshproofError as exc:
        stop.set()
        lock.set_phase("stopping")
        lab.down()
        emit({"error": encode_error(exc)})
        return exc.exit_code
    except KeyboardInterrupt:
        stop.set()
        lock.set_phase("stopping")
        lab.down()
        emit({"error": {"type": "TargetError", "what": "interrupted during up", "hint": ""}})
        return 130
    except Exception as exc:
        traceback.print_exc()  # the starter's stderr: the one-line error hides where it was
        stop.set()
        lock.set_phase("stopping")
        lab.down()
        emit({"error": encode_error(exc)})
        return 1
    info = {"mesh": args.mesh, "defect": args.defect, "pid": os.getpid(),
            "reviews_replicas": args.reviews_replicas, "topology": args.topology,
            "owner_pid": args.owner_pid}
    PIDFILE.write_text(str(os.getpid()))
    daemon = Daemon(lab, info)
    # Reopen stdout/stderr on the log: the starter stops reading after "ready".
    log = os.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    daemon.bind()  # listening before we say "ready"
    threading.Thread(target=daemon.serve, daemon=True).start()
    lock.set_phase("ready")
    emit({"ready": True, **info})
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        while not daemon.done.wait(0.5):
            pass
        stop.set()  # from here on a signal must not interrupt the teardown
    except KeyboardInterrupt:
        pass  # SIGTERM, SIGINT or the owner's death (on_signal has set ``stop``)
    daemon.phase = "stopping"
    lock.set_phase("stopping")
    removed: dict[str, list[str]] = {}
    try:
        removed = teardown(lab)
        print(f"labd: torn down, removed {len(removed['netns'])} netns, "
              f"{len(removed['processes'])} processes", flush=True)
    finally:
        daemon.finish(removed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
