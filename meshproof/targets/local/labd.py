"""The lab daemon: brings the topology up, supervises it, serves the target API.

``meshproof up`` starts it detached so the lab outlives the command; pytest
starts it too when no lab is running. Progress goes to stdout as JSON lines
until the lab is ready (the starter renders it), then stdout moves to
``labd.log``. SIGTERM, SIGINT and the ``down`` call all tear down everything.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socketserver
import sys
import threading
from typing import Any

from meshproof import paths
from meshproof.errors import MeshproofError
from meshproof.registry import local_installer
from meshproof.targets.local.lab import Lab
from meshproof.targets.local.rpc import encode_error
from meshproof.topology import fixture_topology

SOCKET = paths.RUN_DIR / "labd.sock"
PIDFILE = paths.RUN_DIR / "labd.pid"
LOG = paths.RUN_DIR / "labd.log"

#: The Lab methods the daemon serves (the target interface, the lab's own calls, and
#: ``mesh_call``, relayed to the installed mesh).
METHODS = frozenset({
    "capabilities", "list_pods", "list_services", "scale", "kill_pod", "revive_pod",
    "delete_pod", "components", "stop_component", "start_component", "block", "unblock",
    "capture_start", "capture_stop", "probe", "info", "start_process", "stop_process",
    "put_file", "mesh_call", "clock_tick_s",
})


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Daemon:
    def __init__(self, lab: Lab, info: dict[str, Any]) -> None:
        self.lab = lab
        self.info = info
        self.done = threading.Event()
        self.server: socketserver.ThreadingUnixStreamServer | None = None

    def dispatch(self, method: str, args: dict[str, Any]) -> Any:
        if method == "down":
            threading.Thread(target=self.shutdown, daemon=True).start()
            return "stopping"
        if method == "info":
            return self.info
        if method not in METHODS:
            raise MeshproofError(f"unknown lab call {method!r}")
        return getattr(self.lab, method)(**args)

    def shutdown(self) -> None:
        if self.done.is_set():
            return
        self.done.set()
        if self.server:
            self.server.shutdown()

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
    ap.add_argument("--topology", default="fixture", choices=["fixture", "load"])
    args = ap.parse_args(argv)
    lab = Lab()
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            return  # already tearing down: let it finish
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.topology == "load":  # meshed/unmeshed twins for the load tests
            from meshproof.load.topology import load_topology
            topology = load_topology()
        else:
            topology = fixture_topology(reviews_replicas=args.reviews_replicas)
        lab.up(topology,
               progress=lambda msg, done, total: emit(
                   {"progress": msg, "done": done, "total": total}))
        install = local_installer(args.mesh)
        if install is not None:
            install(lab, defect=args.defect,
                    progress=lambda msg, d, t: emit({"progress": msg, "done": d, "total": t}))
    except MeshproofError as exc:
        stop.set()
        lab.down()
        emit({"error": encode_error(exc)})
        return exc.exit_code
    except KeyboardInterrupt:
        stop.set()
        lab.down()
        emit({"error": {"type": "TargetError", "what": "interrupted during up", "hint": ""}})
        return 130
    except Exception as exc:
        stop.set()
        lab.down()
        emit({"error": encode_error(exc)})
        return 1
    info = {"mesh": args.mesh, "defect": args.defect, "pid": os.getpid(),
            "reviews_replicas": args.reviews_replicas, "topology": args.topology}
    PIDFILE.write_text(str(os.getpid()))
    daemon = Daemon(lab, info)
    # Reopen stdout/stderr on the log: the starter stops reading after "ready".
    log = os.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    daemon.bind()  # listening before we say "ready"
    threading.Thread(target=daemon.serve, daemon=True).start()
    emit({"ready": True, **info})
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        while not daemon.done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        daemon.shutdown()
        lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
