"""The node's identity agent: one process serving SDS to every meshed pod of the node.

Why one per node (as Istio's ztunnel or SPIRE's agent do): a per-pod agent
process cost ~53 MB (the interpreter, gRPC, cryptography and the Envoy
protos, loaded again by every pod) and ~1 s of CPU to start, which
dominated bring-up. Here they are loaded once; what stays per pod is what
the identity is bound to:

- each pod has its own SDS socket (in its sidecar dir), mode 0600 owned by
  the pod's proxy uid: only that pod's Envoy (or root) can connect, so a
  pod cannot ask another pod's socket for its key;
- each pod's SVID is requested with that pod's own bootstrap token (read
  from the pod's token file), and the CA signs only the identity the token
  is bound to;
- each pod's key is made for it and written only to its own key dir (0700,
  the proxy uid's).

Pods are added, changed (an impostor identity, a negative control) and
removed through a control API on a root-only Unix socket::

    PUT    /pods/<ns>/<pod>  {namespace, service_account, token_file, sds_socket,
                              key_dir, proxy_uid, [ttl], [serve_cert, serve_key, serve_root]}
    DELETE /pods/<ns>/<pod>
    GET    /pods             -> {"<ns>/<pod>": {"spiffe_id", "generation"}}
    GET    /healthz

SIGHUP renews every pod's SVID at once (the mesh's TTL setting changed).
``--no-rotate`` is the ``rotation-stopped`` defect for every pod,
``--drop-cert-on-ca-outage`` the ``agent-drops-cert-on-ca-outage`` defect (both
live in :class:`refmesh.agent.PodAgent`).

Run::

    python -m refmesh.nodeagent --ca-socket PATH --api-socket PATH [--no-rotate]
        [--drop-cert-on-ca-outage] [--renew-fraction 0.5] [--log-level INFO]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from refmesh import unixhttp
from refmesh.agent import PodAgent, PodSpec

log = logging.getLogger("refmesh.nodeagent")

_PATHS = ("sds_socket", "key_dir", "token_file", "serve_cert", "serve_key", "serve_root")


def pod_spec(body: Any) -> PodSpec:
    """A pod's spec from the API's JSON; ValueError says which field is wrong."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    allowed = set(PodSpec.__dataclass_fields__)
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; allowed: {sorted(allowed)}")
    try:
        args = {k: (Path(v) if k in _PATHS and v is not None else v) for k, v in body.items()}
        spec = PodSpec(**args)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
    if not spec.token_file and not spec.serve_cert:
        raise ValueError("token_file is required unless serve_cert is given")
    return spec


class NodeAgent:
    """Every pod's :class:`PodAgent` in one event loop, driven by the control API thread."""

    def __init__(self, ca_socket: Path, renew_fraction: float = 0.5,
                 no_rotate: bool = False, drop_cert_on_ca_outage: bool = False) -> None:
        self.ca_socket = ca_socket
        self.renew_fraction = renew_fraction
        self.no_rotate = no_rotate
        self.drop_cert_on_ca_outage = drop_cert_on_ca_outage
        self.pods: dict[str, PodAgent] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    async def put(self, key: str, spec: PodSpec) -> None:
        old = self.pods.pop(key, None)
        if old is not None:
            await old.stop()
        agent = PodAgent(spec, self.ca_socket, self.renew_fraction, self.no_rotate,
                         self.drop_cert_on_ca_outage)
        await agent.start()
        self.pods[key] = agent

    async def delete(self, key: str) -> bool:
        old = self.pods.pop(key, None)
        if old is None:
            return False
        await old.stop()
        return True

    def renew_all(self) -> None:
        for agent in self.pods.values():
            agent.renew_now.set()

    async def stop(self) -> None:
        for key in list(self.pods):
            await self.delete(key)

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        """Run ``coro`` on the agent's loop from the API thread."""
        assert self.loop is not None
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)


def make_handler(agent: NodeAgent) -> unixhttp.Handler:
    def handle(method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/healthz":
            return 200, {"ok": True, "pods": len(agent.pods)}
        if method == "GET" and path == "/pods":
            return 200, {k: {"spiffe_id": a.spec.identity.spiffe,
                             "generation": a.store.generation} for k, a in agent.pods.items()}
        if path.startswith("/pods/") and path.count("/") == 3:
            key = path[len("/pods/"):]
            if method == "PUT":
                try:
                    spec = pod_spec(body)
                except ValueError as exc:
                    return 400, {"error": f"bad pod spec for {key}: {exc}"}
                agent.call(agent.put(key, spec))
                return 200, {"pod": key, "spiffe_id": spec.identity.spiffe}
            if method == "DELETE":
                return (200, {"deleted": key}) if agent.call(agent.delete(key)) \
                    else (404, {"error": f"no pod {key}"})
        return 404, {"error": f"no route {method} {path}"}

    return handle


async def serve(a: argparse.Namespace) -> None:
    agent = NodeAgent(a.ca_socket, a.renew_fraction, a.no_rotate, a.drop_cert_on_ca_outage)
    agent.loop = asyncio.get_running_loop()
    api = unixhttp.serve(a.api_socket, make_handler(agent), mode=0o600)
    log.info("node agent: control API on %s, CA %s", a.api_socket, a.ca_socket)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        agent.loop.add_signal_handler(sig, stop.set)
    agent.loop.add_signal_handler(signal.SIGHUP, agent.renew_all)
    await stop.wait()
    api.shutdown()
    await agent.stop()
    a.api_socket.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m refmesh.nodeagent",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--ca-socket", type=Path, required=True)
    ap.add_argument("--api-socket", type=Path, required=True)
    ap.add_argument("--renew-fraction", type=float, default=0.5)
    ap.add_argument("--no-rotate", action="store_true",
                    help="defect rotation-stopped: renew only on SIGHUP, never on a timer")
    ap.add_argument("--drop-cert-on-ca-outage", action="store_true",
                    help="defect agent-drops-cert-on-ca-outage: when a renewal finds the CA "
                    "unreachable, serve an unverifiable placeholder instead of the held SVID")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(a))


if __name__ == "__main__":
    main()
