"""The reference mesh's control plane: SotW ADS over gRPC to every sidecar, plus a control API.

Run::

    python -m refmesh.controlplane --ads-socket PATH --api-socket PATH --state-dir DIR
        [--ads-socket-mode 0666] [--ack-on-send] [--log-level INFO]

``--ack-on-send`` is the ``acked-on-send`` defect (a negative control; its one
place is ``ControlPlane._responses``): a version counts as ACKed the moment it
is sent, so "programmed" comes before the sidecar has it.

- ADS (``envoy.service.discovery.v3.AggregatedDiscoveryService``) on
  ``--ads-socket``: CDS, EDS, LDS, RDS for node ids ``"ns/pod"``. The socket
  is world-writable by default because each sidecar runs as its own uid, so
  every stream is authenticated (see "Who may claim a node" below).
- Control API (HTTP/JSON, root only, 0600) on ``--api-socket``:

  ``GET /healthz`` -> ``{"ok": true, "version": N}``;
  ``GET /state`` -> the state (schema in :mod:`refmesh.state`) with its version;
  ``PUT /state`` (any of registry/policy/options/node_options),
  ``PUT /registry`` ({services, pods}), ``PUT /policy`` ({mtls, splits})
  -> ``{"version": N, "changed": bool}``; a changed state gets version N+1
  and is pushed to every connected sidecar, an unchanged one keeps N;
  ``GET /status`` -> ``{"version": N, "nodes": {"ns/pod": {"connected",
  "known", "types": {"cds"|"eds"|"lds"|"rds": {"subscribed", "expected",
  "sent", "acked", "nack": null | {"version", "message"}}}}}, "refused":
  [{"node", "uid", "pid", "reason", "at"}]}`` (the last refused streams);
  ``GET /config/<ns>/<pod>`` -> ``{"version", "listeners", "clusters",
  "endpoints", "routes"}`` (the dicts that node is sent: evidence);
  ``GET /programmed?version=N&nodes=ns/a,ns/b[&wait=S]`` -> ``{"programmed": bool,
  "pending": {node: reason}}``; with ``wait`` the answer comes as soon as every
  node is programmed or one NACKed, or after S seconds (at most 10): the
  caller is told, nobody polls the sidecars;
  ``GET /debug/syncz`` -> ``{"version", "sidecars": [{"node", "type", "state",
  "sent", "acked", "sent_nonce", "acked_nonce", "nack"}], "build": {...}}``
  (istiod's syncz shape; ``meshproof mesh status`` shows it).

Who may claim a node: grpc python cannot read a Unix socket's peer
credentials, so the ADS socket is served by :class:`PeerRelay`, which reads
``SO_PEERCRED`` of every accepted connection and relays it to the gRPC
server on an ephemeral host-loopback TCP port, remembering which relay port
carries which peer. A stream may claim node ``ns/pod`` only if its peer's
uid is that pod's ``proxy_uid`` in the registry (Istio checks the node
against the client's identity the same way); otherwise it is refused with
PERMISSION_DENIED, the reason is logged and listed under ``refused``, and
the node's status (connection, ACK, NACK) is never touched. A stream
reaching the TCP port directly has no recorded peer and is refused. A
stream claiming a node the registry does not know yet waits, unanswered
and unrecorded, until the registry has it (a pod's sidecar may start
before the registry push that names it).

The last state is persisted to ``--state-dir/state.json`` on every change,
so a restarted control plane serves the same config at the same version.

Programmed, decided here from the control plane's own nonces: a sidecar is
programmed at version N when, for every xDS type it needs, the response
that stands for N was ACKed (a version that leaves a type's content
unchanged for that sidecar is not pushed: the response already sent stands
for it). Envoy ACKs a CDS or LDS response before the new clusters or
listeners finish warming (they wait for EDS and RDS), so a changed CDS is
always followed by EDS on the same stream, and a changed LDS by RDS; Envoy
handles one stream's responses in order, so the child's ACK proves the
parents got what they were warming for. An EDS/RDS ACK counts only when
every name Envoy was asking for at that moment has been sent on the
stream. EDS and RDS go out as the changed resources only (Envoy's SotW
mux keeps what such a response omits), CDS and LDS whole.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from meshproof.errors import ConfigError
from refmesh import unixhttp
from refmesh.snapshots import TYPE_ORDER, Snapshot, SnapshotBuilder
from refmesh.state import MeshState
from refmesh.xds import proto as xproto

log = logging.getLogger("refmesh.controlplane")

NAMED_TYPES = {xproto.ENDPOINT, xproto.ROUTE}  # non-wildcard: Envoy names what it wants
_CHANGE = object()
#: The longest ``GET /programmed?wait=`` holds an API thread (callers loop for longer).
MAX_WAIT_S = 10.0


# --- status ------------------------------------------------------------------


@dataclass
class TypeStatus:
    """One sidecar's sync state for one xDS type, from the control plane's own nonces.

    ``sent``/``acked`` are state versions, not what Envoy echoes: a version
    that left this type's content unchanged is not pushed, and the response
    already sent (or ACKed) then stands for it too. ``sent_nonce``/``acked_nonce``
    are the nonces themselves (``acked_nonce == sent_nonce``: in sync), as
    ``istioctl proxy-status`` reads them from istiod.
    """

    subscribed: bool = False
    expected: bool = False
    sent: int | None = None
    acked: int | None = None
    nack: dict[str, Any] | None = None
    sent_nonce: str = ""
    acked_nonce: str = ""
    pushes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class NodeStatus:
    connected: bool = False
    known: bool = False
    streams: int = 0
    types: dict[str, TypeStatus] = field(
        default_factory=lambda: {xproto.SHORT[t]: TypeStatus() for t in TYPE_ORDER})

    def state_at(self, version: int) -> str:
        """"ok" (programmed at ``version``), "nack" or "pending": :func:`node_pending`'s
        decision without its words (the waiters' hot path)."""
        if not (self.connected and self.known):
            return "pending"
        for ts in self.types.values():
            if not ts.expected:
                continue
            if ts.nack and ts.nack["version"] is not None and ts.nack["version"] >= version:
                return "nack"
            if ts.acked is None or ts.acked < version:
                return "pending"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"connected": self.connected, "known": self.known, "streams": self.streams,
                "types": {k: v.to_dict() for k, v in self.types.items()}}


def programmed(status: dict[str, Any], version: int, nodes: list[str]) -> bool:
    """True when every node in ``nodes`` ACKed ``version`` (or later) for every type it needs.

    ``status`` is ``GET /status``'s answer. Warming is part of it: a changed
    CDS (LDS) is always followed by EDS (RDS) on the same stream, and Envoy
    handles responses in order, so the child's ACK at ``version`` means the
    new clusters (listeners) got what they were warming for.
    """
    return not pending(status, version, nodes)


def node_pending(ns: dict[str, Any] | None, version: int) -> str:
    """Why one node (its ``GET /status`` entry) is not programmed at ``version``; "" if it is."""
    if not ns or not ns.get("connected"):
        return "not connected"
    if not ns.get("known"):
        return "node not in the registry"
    for t, ts in ns["types"].items():
        if not ts["expected"]:
            continue
        nack = ts.get("nack")
        if nack and nack["version"] is not None and nack["version"] >= version:
            return f"{t} NACKed version {nack['version']}: {nack['message']}"
        if ts["acked"] is None or ts["acked"] < version:
            return f"{t} acked {ts['acked']}, sent {ts['sent']}, want {version}"
    return ""


def pending(status: dict[str, Any], version: int, nodes: list[str]) -> dict[str, str]:
    """Why each not-yet-programmed node is not: {node: reason} (empty = all programmed)."""
    out: dict[str, str] = {}
    for n in nodes:
        why = node_pending(status.get("nodes", {}).get(n), version)
        if why:
            out[n] = why
    return out


def nacks(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every outstanding NACK: {"node type": {"version", "message"}}."""
    return {f"{n} {t}": ts["nack"] for n, ns in status.get("nodes", {}).items()
            for t, ts in ns["types"].items() if ts.get("nack")}


def syncz(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Per sidecar and type: sent, acked, nonces, NACK message, and a one-word state
    (SYNCED, STALE, NACK, NOT SENT), the shape of istiod's ``/debug/syncz``."""
    version = status.get("version")
    rows = []
    for n, ns in sorted(status.get("nodes", {}).items()):
        for t, ts in ns["types"].items():
            if not ts["subscribed"] and not ts["expected"]:
                continue
            if ts.get("nack"):
                state = "NACK"
            elif ts["sent"] is None:
                state = "NOT SENT"
            elif ts["acked"] == version and ts["acked_nonce"] == ts["sent_nonce"]:
                state = "SYNCED"
            else:
                state = "STALE"
            rows.append({"node": n, "type": t, "connected": ns["connected"], "state": state,
                         "sent": ts["sent"], "acked": ts["acked"],
                         "sent_nonce": ts["sent_nonce"], "acked_nonce": ts["acked_nonce"],
                         "nack": (ts["nack"] or {}).get("message")})
    return rows


# --- who is on the other end of the ADS socket ---------------------------------


@dataclass(frozen=True)
class PeerCred:
    """The kernel's word (SO_PEERCRED) on who connected: not anything the client claims."""

    pid: int
    uid: int
    gid: int


def peer_cred(sock: Any) -> PeerCred:
    """SO_PEERCRED of a connected Unix socket (a socket or asyncio's TransportSocket)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCred(pid, uid, gid)


class Refused(Exception):
    """A stream that may not claim the node it names; the message says why."""


class PeerRelay:
    """The ADS Unix socket: reads each client's credentials, relays it to gRPC on loopback TCP.

    grpc python exposes no peer credentials for Unix sockets, and a gRPC
    peer on TCP is just an address, so the relay records which of its own
    loopback source ports carries which Unix peer; the servicer looks up
    ``context.peer()`` here. Entries live exactly as long as the relayed
    connection, so a port reused later does not inherit a peer.
    """

    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (host, upstream_port)
        self.peers: dict[str, PeerCred] = {}
        self._server: asyncio.AbstractServer | None = None

    async def start(self, path: Path, mode: int) -> None:
        path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._handle, str(path))
        os.chmod(path, mode)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    def lookup(self, grpc_peer: str) -> PeerCred | None:
        """The Unix peer behind a gRPC peer string such as ``ipv4:127.0.0.1:40123``."""
        return self.peers.get(grpc_peer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            cred = peer_cred(writer.get_extra_info("socket"))
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            log.warning("ADS relay: cannot serve a connection: %s", exc)
            writer.close()
            return
        host, port = up_writer.get_extra_info("sockname")[:2]
        key = f"ipv4:{host}:{port}"
        self.peers[key] = cred  # before any byte goes up: the stream is born with its peer
        try:
            pipes = [asyncio.create_task(_pipe(reader, up_writer)),
                     asyncio.create_task(_pipe(up_reader, writer))]
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            for t in pipes:
                t.cancel()
        finally:
            self.peers.pop(key, None)
            for w in (up_writer, writer):
                w.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(1 << 16):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass


# --- the control plane ---------------------------------------------------------


class ControlPlane:
    def __init__(self, state_dir: Path | None = None, ack_on_send: bool = False) -> None:
        self.state_dir = state_dir
        #: Defect ``acked-on-send``: a version sent counts as ACKed (see ``_responses``).
        self.ack_on_send = ack_on_send
        self.state = MeshState()
        self._lock = threading.Lock()
        self.status: dict[str, NodeStatus] = {}
        self._queues: set[asyncio.Queue[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.snapshots = SnapshotBuilder()
        #: Notified on every status change (ACK, NACK, connect): ``GET /programmed?wait=``
        #: waits on it instead of anyone polling the sidecars.
        self.changed = threading.Condition()
        self._nonces = itertools.count(1)
        #: The last refused streams (who, claiming what, why): ``GET /status`` shows them.
        self.refused: deque[dict[str, Any]] = deque(maxlen=50)
        if state_dir and (state_dir / "state.json").exists():
            self.state = MeshState.from_dict(json.loads((state_dir / "state.json").read_text()))
            log.info("restored state version %d from %s", self.state.version, state_dir)

    # state changes (called from the API thread)

    def update(self, patch: dict[str, Any]) -> tuple[int, bool]:
        with self._lock:
            new = self.state.merged(patch)
            if new.content() == self.state.content():
                return self.state.version, False
            new.version = self.state.version + 1
            self.state = new
            self._persist()
        log.info("state version %d", new.version)
        if self._loop:
            self._loop.call_soon_threadsafe(self._broadcast)
        return new.version, True

    def _persist(self) -> None:
        if not self.state_dir:
            return
        # Root only (0700 dir, 0600 file): the state is every node's config in one file,
        # which the authenticated ADS socket refuses to hand to anyone but the node itself.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        tmp = self.state_dir / ".state.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.state.to_dict()))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.state_dir / "state.json")

    def _broadcast(self) -> None:
        for q in self._queues:
            q.put_nowait(_CHANGE)

    # per-node config

    def snapshot(self, node_id: str) -> Snapshot | None:
        """``node_id``'s config at the current version (None: the registry has no such pod)."""
        return self.snapshots.snapshot(self.state, node_id)

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_programmed(self, version: int, nodes: list[str], timeout: float) -> dict[str, str]:
        """Block until every node in ``nodes`` is programmed at ``version`` or one NACKed
        it, at most ``timeout`` s: {node: why not} (empty = programmed). Woken by the
        ADS streams' own status changes; a wake-up is a few integer compares per node
        (:meth:`NodeStatus.state_at`), the reasons are written only for the answer."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                states = {n: (st.state_at(version) if (st := self.status.get(n)) else "pending")
                          for n in nodes}
                done = all(v == "ok" for v in states.values())
                nacked = any(v == "nack" for v in states.values())
                left = deadline - time.monotonic()
                if done or nacked or left <= 0:
                    return {n: node_pending(self.status[n].to_dict() if n in self.status
                                            else None, version)
                            for n, v in states.items() if v != "ok"}
                self.changed.wait(left)

    def status_dict(self) -> dict[str, Any]:
        return {"version": self.state.version,
                "nodes": {n: s.to_dict() for n, s in sorted(self.status.items())},
                "refused": list(self.refused)}

    # who may claim a node

    def authorize(self, node_id: str, peer: PeerCred | None) -> str | None:
        """Why ``peer`` may not claim ``node_id`` now; None when it may.

        Raises nothing: the caller refuses on a reason. The empty string
        means "not decidable yet": the registry does not know the node.
        """
        if peer is None:
            return ("no peer credentials: the stream did not come through the ADS socket "
                    "(connect to the Unix socket, not the relay's TCP port)")
        if not node_id:
            return "the first request names no node id"
        pod = self.state.pod(node_id)
        if pod is None:
            return ""
        if peer.uid == pod.proxy_uid:
            return None
        owners = [p.key for p in self.state.registry.pods if p.proxy_uid == peer.uid]
        whose = (f"uid {peer.uid} is the proxy uid of {', '.join(owners)}" if owners
                 else f"uid {peer.uid} is no pod's proxy uid")
        return (f"uid {peer.uid} (pid {peer.pid}) may not claim node {node_id}: only its "
                f"proxy uid {pod.proxy_uid} may ({whose})")

    def _refuse(self, node_id: str, peer: PeerCred | None, reason: str) -> Refused:
        log.warning("refused ADS stream claiming %s: %s", node_id or "(no node)", reason)
        self.refused.append({"node": node_id, "uid": peer.uid if peer else None,
                             "pid": peer.pid if peer else None, "reason": reason,
                             "at": time.time()})
        return Refused(reason)

    # ADS

    async def stream(self, requests: AsyncIterator[discovery_pb2.DiscoveryRequest],
                     peer: PeerCred | None) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        """One ADS stream from ``peer``; raises :class:`Refused` when it may not claim its node.

        Nothing is answered and nothing is recorded for a node until the
        stream is authorized, so an impostor can neither read a node's
        config nor ACK or NACK in its name.
        """
        q: asyncio.Queue[Any] = asyncio.Queue()
        self._queues.add(q)

        async def read() -> None:
            try:
                async for req in requests:
                    await q.put(req)
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass
            finally:
                await q.put(None)

        reader = asyncio.create_task(read())
        st: NodeStatus | None = None
        node_id = ""
        try:
            node_id, backlog = await self._authenticate(q, peer)
            if node_id is None:
                return
            st = self.status.setdefault(node_id, NodeStatus())
            # A new stream is a new Envoy (or a reconnected one): what the last one ACKed
            # says nothing about what this one has, until it ACKs it again.
            st.types = NodeStatus().types
            st.connected, st.streams = True, st.streams + 1
            self._notify()
            log.info("sidecar %s connected (uid %s, pid %s)", node_id, peer and peer.uid,
                     peer and peer.pid)
            async for resp in self._serve_node(node_id, st, backlog, q, peer):
                yield resp
        finally:
            reader.cancel()
            self._queues.discard(q)
            if st is not None:
                st.streams -= 1
                st.connected = st.streams > 0
                self._notify()
                log.info("sidecar %s disconnected", node_id)

    async def _authenticate(self, q: asyncio.Queue[Any], peer: PeerCred | None
                            ) -> tuple[Any, list[discovery_pb2.DiscoveryRequest]]:
        """Wait for the first request and the right to serve its node: (node id, requests so
        far), or (None, []) if the stream ended first. Registry changes re-check a node the
        registry did not know yet; a wrong peer is refused at once."""
        backlog: list[discovery_pb2.DiscoveryRequest] = []
        node_id = ""
        told = False
        while True:
            ev = await q.get()
            if ev is None:
                return None, []
            if ev is not _CHANGE:
                backlog.append(ev)
                node_id = node_id or ev.node.id
            if not backlog:
                continue
            reason = self.authorize(node_id, peer)
            if reason is None:
                return node_id, backlog
            if reason:
                raise self._refuse(node_id, peer, reason)
            if not told:
                log.info("stream claiming %s waits: the registry does not know it yet", node_id)
                told = True

    async def _serve_node(self, node_id: str, st: NodeStatus,
                          backlog: list[discovery_pb2.DiscoveryRequest], q: asyncio.Queue[Any],
                          peer: PeerCred | None) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        """The SotW exchange of an authorized stream: answer requests, push changes, track ACKs."""
        sync = _StreamSync()

        async def events() -> AsyncIterator[Any]:
            for req in backlog:
                yield req
            while (ev := await q.get()) is not None:
                yield ev

        async for ev in events():
            if ev is _CHANGE:
                reason = self.authorize(node_id, peer)
                if reason:  # the registry now gives this node another proxy uid
                    raise self._refuse(node_id, peer, reason)
                out = self._push(node_id, st, sync)
            else:
                out = self._answer(node_id, st, sync, ev, peer)
            self._notify()
            for resp in out:
                yield resp

    def _answer(self, node_id: str, st: NodeStatus, sync: _StreamSync,
                req: discovery_pb2.DiscoveryRequest, peer: PeerCred | None
                ) -> list[discovery_pb2.DiscoveryResponse]:
        """One request from Envoy: a first request, an ACK, a NACK or a stale one."""
        if req.node.id and req.node.id != node_id:
            raise self._refuse(req.node.id, peer,
                               f"the stream of {node_id} switched to node {req.node.id}")
        t = req.type_url
        if t not in xproto.TYPES:
            log.warning("%s asked for unsupported type %s", node_id, t)
            return []
        short = xproto.SHORT[t]
        ts = st.types[short]
        ts.subscribed = True
        want = sorted(req.resource_names)
        if t in NAMED_TYPES:
            # A name Envoy no longer asks for is forgotten on its side: if it comes back
            # it must be sent again.
            held = sync.sent_serials.setdefault(t, {})
            for n in [n for n in held if n not in set(want)]:
                del held[n]
        sync.names[t] = want
        if not req.response_nonce:
            sync.sent_serials.pop(t, None)
            return self._responses(node_id, st, sync, {t: None})
        if req.response_nonce != sync.nonce.get(t):
            return []  # stale: names remembered, the fresh ACK decides
        if req.HasField("error_detail") and req.error_detail.code:
            ts.nack = {"version": sync.stands_for.get(t), "message": req.error_detail.message}
            sync.full_next.add(t)  # the next response carries every name: its ACK is whole
            log.warning("NACK from %s for %s version %s: %s", node_id, short,
                        ts.nack["version"], req.error_detail.message)
            return []
        if t in NAMED_TYPES:
            missing = [n for n in want if n not in sync.sent_serials.get(t, {})]
            if missing:
                return self._responses(node_id, st, sync, {t: missing})  # not sent yet
        sync.acked_nonce[t] = req.response_nonce
        ts.acked_nonce = req.response_nonce
        ts.acked = sync.stands_for.get(t)
        if ts.nack and ts.acked is not None:
            if t in sync.partial:
                # A partial response's ACK says nothing of the names a NACK rejected:
                # their rejected content still stands for this version.
                ts.nack = {**ts.nack, "version": ts.acked}
            elif ts.acked >= (ts.nack["version"] or 0):
                ts.nack = None
        return []

    def _push(self, node_id: str, st: NodeStatus, sync: _StreamSync
              ) -> list[discovery_pb2.DiscoveryResponse]:
        """A new state version: send what changed for this node, and only that.

        CDS and LDS go whole (Envoy removes what a response of theirs omits)
        when their content changed. EDS and RDS go as the changed resources
        only (Envoy keeps what a response of theirs omits: its SotW mux
        updates only the watches a response names), except right after their
        parent changed (new clusters and listeners warm on them: every name
        goes) or after a NACK. The types not sent keep their last response,
        which then stands for the new version.
        """
        snap = self.snapshot(node_id)
        st.known = snap is not None
        if snap is None:
            return []
        todo: dict[str, list[str] | None] = {}
        for t in TYPE_ORDER:
            names = sync.names.get(t)
            if names is None:
                continue
            if t not in NAMED_TYPES:
                if snap.signature(t) != sync.sent_sig.get(t):
                    todo[t] = None
                continue
            held = sync.sent_serials.get(t, {})
            changed = [n for n in names if n in snap.res[t]
                       and snap.res[t][n].serial != held.get(n)]
            if t in sync.full_next:
                todo[t] = None
            elif changed:
                todo[t] = changed
        for parent, child in ((xproto.CLUSTER, xproto.ENDPOINT), (xproto.LISTENER, xproto.ROUTE)):
            if parent in todo and sync.names.get(child) is not None:
                todo[child] = None
        for t in TYPE_ORDER:
            if t in todo or sync.names.get(t) is None:
                continue
            ts = st.types[xproto.SHORT[t]]
            ts.expected = bool(snap.res[t])
            sync.stands_for[t] = snap.version
            ts.sent = snap.version
            if sync.acked_nonce.get(t) == sync.nonce.get(t):
                ts.acked = snap.version
            elif ts.nack:
                ts.nack = {**ts.nack, "version": snap.version}  # the rejected content stands
        return self._responses(node_id, st, sync, todo, snap)

    def _responses(self, node_id: str, st: NodeStatus, sync: _StreamSync,
                   todo: dict[str, list[str] | None], snap: Snapshot | None = None
                   ) -> list[discovery_pb2.DiscoveryResponse]:
        """One response per type in ``todo``: its listed names, or (None) all it has
        (CDS, LDS) or all Envoy asks for (EDS, RDS)."""
        snap = snap or self.snapshot(node_id)
        st.known = snap is not None
        if snap is None:
            return []  # unknown pod: answer once the registry has it (a change re-triggers)
        out = []
        for t in TYPE_ORDER:
            ts = st.types[xproto.SHORT[t]]
            ts.expected = bool(snap.res[t])
            if t not in todo:
                continue
            if t in NAMED_TYPES:
                some = todo[t]
                names = [n for n in (some if some is not None else sync.names.get(t) or [])
                         if n in snap.res[t]]
                held = sync.sent_serials.setdefault(t, {})
                held.update((n, snap.res[t][n].serial) for n in names)
                (sync.partial.add if some is not None else sync.partial.discard)(t)
                resources = snap.anys(t, names)
            else:
                sync.sent_sig[t] = snap.signature(t)
                resources = snap.anys(t)
            sync.full_next.discard(t)
            n = str(next(self._nonces))
            sync.nonce[t] = n
            sync.stands_for[t] = snap.version
            ts.sent, ts.sent_nonce, ts.pushes = snap.version, n, ts.pushes + 1
            if self.ack_on_send:  # the defect: "sent" reported as ACKed
                ts.acked = snap.version
            out.append(discovery_pb2.DiscoveryResponse(
                version_info=str(snap.version), resources=resources, type_url=t, nonce=n))
        return out


@dataclass
class _StreamSync:
    """What one ADS stream has been sent and has ACKed, per type url."""

    #: Names Envoy asks for (None: not subscribed yet); wildcard types keep [].
    names: dict[str, list[str] | None] = field(default_factory=dict)
    nonce: dict[str, str] = field(default_factory=dict)
    acked_nonce: dict[str, str] = field(default_factory=dict)
    #: The state version the last response of each type stands for.
    stands_for: dict[str, int] = field(default_factory=dict)
    #: CDS, LDS: the (name, serial) content of the last response.
    sent_sig: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    #: EDS, RDS: the serial Envoy holds per name (sent on this stream, still asked for).
    sent_serials: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Types whose last response carried only some names.
    partial: set[str] = field(default_factory=set)
    #: Types whose next response must carry every name (after a NACK).
    full_next: set[str] = field(default_factory=set)


class _Ads(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, cp: ControlPlane, relay: PeerRelay) -> None:
        self.cp = cp
        self.relay = relay

    async def StreamAggregatedResources(self, request_iterator, context):  # type: ignore[no-untyped-def]
        # grpc.aio decides sync vs async by inspecting this method: it must itself be an async generator.
        peer = self.relay.lookup(context.peer())
        try:
            async for resp in self.cp.stream(request_iterator, peer):
                yield resp
        except Refused as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))


# --- control API ---------------------------------------------------------------


def make_handler(cp: ControlPlane) -> unixhttp.Handler:
    def handle(method: str, raw_path: str, body: Any) -> tuple[int, Any]:
        u = urlsplit(raw_path)
        path, query = u.path, parse_qs(u.query)
        try:
            if method == "GET" and path == "/healthz":
                return 200, {"ok": True, "version": cp.state.version}
            if method == "GET" and path == "/state":
                return 200, cp.state.to_dict()
            if method == "GET" and path == "/status":
                return 200, cp.status_dict()
            if method == "GET" and path == "/debug/syncz":
                st = cp.status_dict()
                return 200, {"version": st["version"], "sidecars": syncz(st),
                             "build": cp.snapshots.stats.to_dict()}
            if method == "PUT" and path in ("/state", "/registry", "/policy"):
                if not isinstance(body, dict):
                    return 400, {"error": "body must be a JSON object"}
                patch = body if path == "/state" else {path[1:]: body}
                version, changed = cp.update(patch)
                return 200, {"version": version, "changed": changed}
            if method == "GET" and path.startswith("/config/"):
                node = path[len("/config/"):]
                snap = cp.snapshot(node)
                if snap is None:
                    return 404, {"error": f"no pod {node} in the registry"}
                dicts = snap.dicts()
                return 200, {"version": snap.version,
                             **{k: list(dicts[xproto.SHORT[t]].values())
                                for t, k in ((xproto.LISTENER, "listeners"), (xproto.CLUSTER, "clusters"),
                                             (xproto.ENDPOINT, "endpoints"), (xproto.ROUTE, "routes"))}}
            if method == "GET" and path == "/programmed":
                version = int(query.get("version", [str(cp.state.version)])[0])
                nodes = [n for n in query.get("nodes", [""])[0].split(",") if n]
                wait = min(float(query.get("wait", ["0"])[0]), MAX_WAIT_S)
                p = cp.wait_programmed(version, nodes, wait)
                return 200, {"programmed": not p, "version": version, "pending": p}
        except ConfigError as e:
            return 400, {"error": e.what, "hint": e.hint}
        return 404, {"error": f"no route {method} {path}"}

    return handle


async def serve(a: argparse.Namespace) -> None:
    cp = ControlPlane(a.state_dir, ack_on_send=a.ack_on_send)
    cp._loop = asyncio.get_running_loop()
    server = grpc.aio.server()
    # gRPC listens on an ephemeral host-loopback port; sidecars reach it only through the
    # relay on the Unix socket, which vouches for each connection's peer (see PeerRelay).
    port = server.add_insecure_port("127.0.0.1:0")
    relay = PeerRelay(port)
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(_Ads(cp, relay), server)
    a.ads_socket.parent.mkdir(parents=True, exist_ok=True)
    await server.start()
    await relay.start(a.ads_socket, int(a.ads_socket_mode, 8))
    api = unixhttp.serve(a.api_socket, make_handler(cp), mode=0o600)
    log.info("ADS on %s (authenticated relay to 127.0.0.1:%d), control API on %s, version %d",
             a.ads_socket, port, a.api_socket, cp.state.version)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        cp._loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    api.shutdown()
    await relay.stop()
    await server.stop(0.5)
    a.ads_socket.unlink(missing_ok=True)
    a.api_socket.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m refmesh.controlplane",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--ads-socket", type=Path, required=True)
    ap.add_argument("--api-socket", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path, default=None)
    ap.add_argument("--ads-socket-mode", default="0666",
                    help="octal mode of the ADS socket (sidecars run as per-pod uids)")
    ap.add_argument("--ack-on-send", action="store_true",
                    help="defect acked-on-send: count a version as ACKed when it is sent")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(a))


if __name__ == "__main__":
    main()
