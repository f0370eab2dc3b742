"""Per-pod identity agent: key + CSR -> CA, then serve the SVID to the pod's Envoy over SDS.

Why an agent: the private key is born in the pod and never leaves it (only
the CSR goes to the CA), and Envoy gets the key over a local Unix socket
instead of reading files, so rotation needs no restart: the agent renews
at half life and pushes the new secret on Envoy's open SDS stream.

Run::

    python -m refmesh.agent --ca-socket PATH --token-file FILE
        --namespace NS --service-account SA --sds-socket PATH --key-dir DIR
        [--proxy-uid UID] [--trust-domain cluster.local] [--ttl SECONDS]
        [--serve-cert PEM --serve-key PEM [--serve-root PEM]] [--no-rotate]
        [--log-level INFO]

- ``--ttl``: ask the CA for this SVID lifetime (short TTLs exercise rotation).
- ``--serve-cert/--serve-key``: serve this (e.g. expired or foreign) cert
  instead of asking the CA; no renewal. The root still comes from the CA
  unless ``--serve-root`` is given. For negative controls.
- SIGHUP: renew now (the mesh's TTL setting changed: the next certificate
  is issued under it at once instead of at the old one's half life).
- ``--no-rotate``: the ``rotation-stopped`` defect (a negative control): the
  renewal timer is never armed, so the SVID is renewed only on SIGHUP and
  otherwise served until it expires. The one place the defect lives.
- ``--drop-cert-on-ca-outage``: the ``agent-drops-cert-on-ca-outage`` defect (a
  negative control): a renewal that finds the CA unreachable makes the agent
  serve a placeholder SVID from a throwaway root (``unverifiable_svid``) instead
  of the one it holds. The one place the defect lives.
- ``--proxy-uid``: the key dir (0700), key (0600), cert and the SDS socket
  are chowned to this uid, so only that pod's Envoy can read them.

SDS secrets: ``default`` (tls_certificate) and ``ROOTCA``
(validation_context). The key dir also holds ``key.pem``, ``cert.pem``,
``root.pem`` and ``svid.json`` (serial, not_after, generation), which tests
and probes use as evidence or as client credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

from meshproof.targets.model import TRUST_DOMAIN, spiffe_id
from refmesh import pki, unixhttp

log = logging.getLogger("refmesh.agent")

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
CERT_SECRET = "default"
ROOT_SECRET = "ROOTCA"


@dataclass
class Svid:
    cert_pem: bytes
    key_pem: bytes
    root_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def secrets_for(svid: Svid) -> dict[str, secret_pb2.Secret]:
    """The two SDS secrets Envoy asks for, from one SVID."""
    tls = secret_pb2.Secret(name=CERT_SECRET)
    tls.tls_certificate.certificate_chain.inline_bytes = svid.cert_pem
    tls.tls_certificate.private_key.inline_bytes = svid.key_pem
    root = secret_pb2.Secret(name=ROOT_SECRET)
    root.validation_context.trusted_ca.inline_bytes = svid.root_pem
    return {CERT_SECRET: tls, ROOT_SECRET: root}


class SecretStore:
    """The current secrets plus a generation counter streams wait on."""

    def __init__(self) -> None:
        self.generation = 0
        self.secrets: dict[str, secret_pb2.Secret] = {}
        self.changed = asyncio.Condition()

    async def update(self, svid: Svid) -> None:
        async with self.changed:
            self.secrets = secrets_for(svid)
            self.generation += 1
            self.changed.notify_all()


class SdsServicer(sds_pb2_grpc.SecretDiscoveryServiceServicer):
    """SotW SDS: answer each request for named secrets, push again on every new generation."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store
        self._nonces = itertools.count(1)

    async def StreamSecrets(self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
                            context: grpc.aio.ServicerContext) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        events: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()

        async def read() -> None:
            async for req in request_iterator:
                await events.put(req)
            await events.put(None)

        async def watch() -> None:
            seen = self.store.generation
            while True:
                async with self.store.changed:
                    await self.store.changed.wait_for(lambda: self.store.generation != seen)
                    seen = self.store.generation
                await events.put(discovery_pb2.DiscoveryRequest())  # an empty marker: "changed"

        tasks = [asyncio.create_task(read()), asyncio.create_task(watch())]
        names: list[str] | None = None
        sent_gen = -1
        try:
            while True:
                ev = await events.get()
                if ev is None:
                    return
                if ev.type_url:  # a real request from Envoy
                    if ev.error_detail.code:
                        log.warning("SDS NACK for %s: %s", list(ev.resource_names), ev.error_detail.message)
                        continue
                    if names is not None and list(ev.resource_names) == names and ev.response_nonce:
                        continue  # ACK of what we sent
                    names = list(ev.resource_names)
                elif names is None or sent_gen == self.store.generation:
                    continue
                if not self.store.secrets:
                    continue  # nothing issued yet; the watch marker will come
                sent_gen = self.store.generation
                res = []
                for n in names:
                    if n in self.store.secrets:
                        a = any_pb2.Any()
                        a.Pack(self.store.secrets[n])
                        res.append(a)
                    else:
                        log.warning("Envoy asked for unknown secret %r", n)
                yield discovery_pb2.DiscoveryResponse(version_info=str(sent_gen), resources=res,
                                                      type_url=SECRET_TYPE,
                                                      nonce=str(next(self._nonces)))
                log.info("SDS pushed %s generation %d", names, sent_gen)
        finally:
            for t in tasks:
                t.cancel()


@dataclass
class Identity:
    namespace: str
    service_account: str
    trust_domain: str = TRUST_DOMAIN

    @property
    def spiffe(self) -> str:
        return spiffe_id(self.namespace, self.service_account, self.trust_domain)


class CARefused(Exception):
    pass


def request_svid(ca_socket: Path, token: str, ident: Identity, ttl: int | None) -> Svid:
    """Make a fresh key and CSR, have the CA sign it (blocking)."""
    key = pki.new_key()
    body: dict[str, object] = {"csr": pki.make_csr(key, ident.spiffe).decode(), "token": token}
    if ttl is not None:
        body["ttl_seconds"] = ttl
    status, out = unixhttp.request_json(ca_socket, "POST", "/sign", body)
    if status != 200:
        raise CARefused(f"CA answered {status}: {out}")
    return Svid(out["cert"].encode(), pki.key_pem(key), out["root"].encode())


def fetch_root(ca_socket: Path) -> bytes:
    status, raw = unixhttp.request(ca_socket, "GET", "/root")
    if status != 200:
        raise CARefused(f"CA /root answered {status}")
    return raw


def write_key_dir(key_dir: Path, svid: Svid, generation: int, uid: int | None) -> None:
    """Key dir 0700 owned by the proxy uid; key 0600; cert, root and status readable by it."""
    key_dir.mkdir(parents=True, exist_ok=True)
    key_dir.chmod(0o700)
    if uid is not None:
        os.chown(key_dir, uid, uid)
    pki.write_private(key_dir / "key.pem", svid.key_pem, uid)
    cert = svid.cert
    status = {"generation": generation, "serial": f"{cert.serial_number:x}",
              "spiffe_id": pki.uri_sans(cert), "not_before": cert.not_valid_before_utc.isoformat(),
              "not_after": cert.not_valid_after_utc.isoformat()}
    for name, data in (("cert.pem", svid.cert_pem), ("root.pem", svid.root_pem),
                       ("svid.json", json.dumps(status).encode())):
        pki.write_private(key_dir / name, data, uid)


def unverifiable_svid(ident: Identity, store: SecretStore) -> Svid:
    """The ``agent-drops-cert-on-ca-outage`` defect (``--drop-cert-on-ca-outage``): what a
    careless agent serves once the CA is unreachable, instead of the certificate it
    holds: a fresh key and an SVID for the same identity from a throwaway root, so
    Envoy loads it and every peer refuses it. The mesh's root is kept for validation."""
    throwaway_key, throwaway_root = pki.new_root(ident.trust_domain, days=1)
    key = pki.new_key()
    cert = pki.sign_svid(throwaway_key, throwaway_root, key.public_key(), ident.spiffe, 3600)
    root = store.secrets[ROOT_SECRET].validation_context.trusted_ca.inline_bytes
    return Svid(pki.cert_pem(cert), pki.key_pem(key), bytes(root))


def renew_delay(cert: x509.Certificate, fraction: float = 0.5) -> float:
    """Seconds until ``fraction`` of the cert's remaining lifetime has passed (>= 0.5 s).

    Counted from now, not from not_before: the CA backdates not_before for
    clock skew, which would otherwise make short TTLs renew in a busy loop.
    """
    left = (cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()
    return max(0.5, left * fraction)


@dataclass
class PodSpec:
    """One pod's identity as an agent serves it: whose token, which SDS socket and keys."""

    namespace: str
    service_account: str
    sds_socket: Path
    key_dir: Path
    token_file: Path | None = None
    proxy_uid: int | None = None
    ttl: int | None = None
    trust_domain: str = TRUST_DOMAIN
    serve_cert: Path | None = None
    serve_key: Path | None = None
    serve_root: Path | None = None

    @property
    def identity(self) -> Identity:
        return Identity(self.namespace, self.service_account, self.trust_domain)


class PodAgent:
    """One pod's SDS server (its own Unix socket, chowned to its proxy uid) and the loop
    that gets its SVID from the CA with its bootstrap token and renews it.

    The one piece of agent logic: ``python -m refmesh.agent`` runs one of these in
    its own process; the node agent (:mod:`refmesh.nodeagent`) runs one per pod of
    the node in a single process, so identities stay per pod (socket, token, key
    dir) while the interpreter, gRPC and the protos are loaded once per node.
    """

    def __init__(self, spec: PodSpec, ca_socket: Path, renew_fraction: float = 0.5,
                 no_rotate: bool = False, drop_cert_on_ca_outage: bool = False) -> None:
        self.spec = spec
        self.ca_socket = ca_socket
        self.renew_fraction = renew_fraction
        #: Defect ``rotation-stopped``: the renewal timer is never armed (SIGHUP only).
        self.no_rotate = no_rotate
        #: Defect ``agent-drops-cert-on-ca-outage`` (see :func:`unverifiable_svid`).
        self.drop_cert_on_ca_outage = drop_cert_on_ca_outage
        self.store = SecretStore()
        self.renew_now = asyncio.Event()
        self._server: grpc.aio.Server | None = None
        self._issuer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        spec = self.spec
        server = grpc.aio.server()
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(SdsServicer(self.store), server)
        spec.sds_socket.parent.mkdir(parents=True, exist_ok=True)
        spec.sds_socket.unlink(missing_ok=True)
        server.add_insecure_port(f"unix:{spec.sds_socket}")
        await server.start()
        # Only the pod's own proxy uid may connect (root aside): another pod's Envoy cannot
        # ask this socket for this pod's key.
        os.chmod(spec.sds_socket, 0o600)
        if spec.proxy_uid is not None:
            os.chown(spec.sds_socket, spec.proxy_uid, spec.proxy_uid)
        self._server = server
        log.info("SDS serving on %s for %s", spec.sds_socket, spec.identity.spiffe)
        self._issuer = asyncio.create_task(self.issue_forever())

    async def stop(self) -> None:
        if self._issuer:
            self._issuer.cancel()
        if self._server:
            await self._server.stop(0.5)
        self.spec.sds_socket.unlink(missing_ok=True)

    async def until_renewal(self, cert: x509.Certificate) -> None:
        """Sleep to the renewal time, or until asked to renew now (SIGHUP)."""
        delay = None if self.no_rotate else renew_delay(cert, self.renew_fraction)
        try:
            await asyncio.wait_for(self.renew_now.wait(), delay)
        except asyncio.TimeoutError:
            pass
        self.renew_now.clear()

    async def issue_forever(self) -> None:
        spec, ident, store = self.spec, self.spec.identity, self.store
        token = spec.token_file.read_text().strip() if spec.token_file else ""
        backoff = 0.5
        dropped = False  # agent-drops-cert-on-ca-outage: the placeholder is served
        while True:
            try:
                if spec.serve_cert and spec.serve_key:
                    root = (spec.serve_root.read_bytes() if spec.serve_root
                            else await asyncio.to_thread(fetch_root, self.ca_socket))
                    svid = Svid(spec.serve_cert.read_bytes(), spec.serve_key.read_bytes(), root)
                else:
                    svid = await asyncio.to_thread(request_svid, self.ca_socket, token, ident,
                                                   spec.ttl)
            except (OSError, CARefused) as e:
                log.error("cannot get an SVID for %s: %s (retry in %.1fs)", ident.spiffe, e,
                          backoff)
                if self.drop_cert_on_ca_outage and store.secrets and not dropped:  # the defect
                    dropped = True
                    await store.update(unverifiable_svid(ident, store))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            dropped = False
            await store.update(svid)
            write_key_dir(spec.key_dir, svid, store.generation, spec.proxy_uid)
            cert = svid.cert
            log.info("SVID %s generation %d serial=%x not_after=%s", ident.spiffe,
                     store.generation, cert.serial_number, cert.not_valid_after_utc.isoformat())
            if spec.serve_cert:
                return  # a given cert is served as is: no renewal
            await self.until_renewal(cert)


async def run(a: argparse.Namespace) -> None:
    """One pod's agent in its own process (the node agent runs many in one)."""
    spec = PodSpec(a.namespace, a.service_account, a.sds_socket, a.key_dir, a.token_file,
                   a.proxy_uid, a.ttl, a.trust_domain, a.serve_cert, a.serve_key, a.serve_root)
    agent = PodAgent(spec, a.ca_socket, a.renew_fraction, a.no_rotate,
                     a.drop_cert_on_ca_outage)
    await agent.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, agent.renew_now.set)
    await stop.wait()
    await agent.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m refmesh.agent", description=__doc__.split("\n")[0])
    ap.add_argument("--ca-socket", type=Path, required=True)
    ap.add_argument("--token-file", type=Path, default=None)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--service-account", required=True)
    ap.add_argument("--trust-domain", default=TRUST_DOMAIN)
    ap.add_argument("--sds-socket", type=Path, required=True)
    ap.add_argument("--key-dir", type=Path, required=True)
    ap.add_argument("--proxy-uid", type=int, default=None)
    ap.add_argument("--ttl", type=int, default=None, help="requested SVID lifetime in seconds")
    ap.add_argument("--renew-fraction", type=float, default=0.5)
    ap.add_argument("--no-rotate", action="store_true",
                    help="defect rotation-stopped: renew only on SIGHUP, never on a timer")
    ap.add_argument("--serve-cert", type=Path, default=None)
    ap.add_argument("--serve-key", type=Path, default=None)
    ap.add_argument("--serve-root", type=Path, default=None)
    ap.add_argument("--drop-cert-on-ca-outage", action="store_true",
                    help="defect agent-drops-cert-on-ca-outage: when a renewal finds the CA "
                    "unreachable, serve an unverifiable placeholder instead of the held SVID")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    if bool(a.serve_cert) != bool(a.serve_key):
        ap.error("--serve-cert and --serve-key go together")
    if not a.serve_cert and not a.token_file:
        ap.error("--token-file is required unless --serve-cert is given")
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
