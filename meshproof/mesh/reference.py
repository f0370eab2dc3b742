"""The reference mesh's adapter: intents -> control-plane policy, programmed = ACKed and live.

Programmed means, for every sidecar: the control plane saw it ACK the
policy's version for every xDS type (a NACK fails at once with Envoy's
message), with warming inferred from the order of ACKs on its stream (see
``refmesh.controlplane``). The control plane answers the wait itself when
that happens; nothing polls the sidecars. Only then may a check sample
traffic.

The adapter talks to the control plane and the CA over their Unix sockets on
the lab host and never imports the lab engine: operations that need the
lab's process supervisor (an impostor identity) go through the target's
``mesh_call``, which relays them to the mesh's own installer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from meshproof import __version__
from meshproof.errors import MeshproofError, TargetError
from meshproof.intent import Intent, Policy
from meshproof.mesh.base import (CertAnswer, ConfigRejected, IssuedCert, MeshAdapter,
                                 MeshInfo, NotProgrammed, Token)
from meshproof.mesh.defects import IMPLEMENTED
from meshproof.mesh.refpaths import CA_SOCKET, CERT_TTL, CP_API_SOCKET, TOKENS, admin_socket
from meshproof.pki import csr_and_key
from meshproof.targets.base import Target
from meshproof.targets.model import Pod, ProbeOrder, ProbeResult

#: Features the reference mesh claims: all of them (a skip against it is a failure).
CLAIMS = frozenset({"mtls-strict", "mtls-permissive", "mtls-workload-override",
                    "traffic-split", "traffic-split-match", "xfcc-spiffe", "server-identity",
                    "cert-validation", "cert-rotation", "identity-issuance", "access-control",
                    "access-control-routes", "retries", "timeouts", "fault-injection",
                    "gamma-httproute", "protocol-http2", "protocol-grpc", "protocol-tcp",
                    "access-control-tcp",
                    # Gateway API mesh routing (refmesh.xds.httproutes).
                    "httproute-matching", "httproute-query-matching",
                    "httproute-header-modifier", "httproute-backend-header-modifier",
                    "httproute-response-header-modifier", "httproute-redirect",
                    "httproute-redirect-scheme", "httproute-redirect-port",
                    "httproute-redirect-path", "httproute-redirect-303-307-308",
                    "httproute-rewrite", "httproute-named-rule", "httproute-parentref-port",
                    "mesh-consumer-route", "mesh-cluster-ip-matching", "grpcroute"})


@runtime_checkable
class MeshHost(Protocol):
    """A target that relays operations to the mesh installed in it (the local lab)."""

    def mesh_call(self, op: str, **args: Any) -> Any: ...


def envoy_version() -> str:
    try:
        from refmesh.envoy_binary import envoy_version as read

        return str(read())
    except Exception as exc:  # the report says so rather than failing the run
        return f"unknown ({type(exc).__name__})"


class ControlPlaneClient:
    """The reference control plane's JSON API (policy, state, per-sidecar status)."""

    def request(self, method: str, url: str, body: Any = None, timeout: float = 10) -> Any:
        from refmesh import unixhttp

        try:
            status, answer = unixhttp.request_json(CP_API_SOCKET, method, url, body,
                                                   timeout=timeout)
        except OSError as exc:
            raise TargetError(f"the reference control plane is unreachable: {exc}",
                              "is the lab up with --mesh reference?") from exc
        if status >= 400:
            raise MeshproofError(f"control plane refused {method} {url}: {answer}")
        return answer

    def policy(self) -> Policy:
        return Policy.from_dict(self.request("GET", "/state").get("policy") or {})

    def push(self, policy: Policy) -> int:
        """Replace the policy in force; returns the version the control plane gave it."""
        return int(self.request("PUT", "/policy", policy.to_dict())["version"])


class ReferenceMesh(MeshAdapter):
    name = "reference"

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.cp = ControlPlaneClient()
        self.sidecars = sorted((p for p in target.pods() if p.meshed), key=lambda p: p.key)
        # The control plane holds the policy in force: start from it, so the CLI and a
        # test session share one truth.
        self.policy = self.cp.policy()
        self.undo_stale_cert_ttl()

    # ------------------------------------------------------------ declarations

    def claims(self) -> frozenset[str]:
        return CLAIMS

    def describe(self) -> MeshInfo:
        # Every sidecar runs Envoy with one worker thread (reference_local's installer).
        return MeshInfo(self.name, f"meshproof {__version__}", "acked",
                        {"envoy": envoy_version(), "envoy_concurrency": "1"})

    def capabilities(self) -> frozenset[str]:
        caps = {"issue-certificate", "request-certificate", "bypass-sidecar"}
        if isinstance(self.target, MeshHost):
            caps |= {"impersonate", "short-cert-ttl"}
        return frozenset(caps)

    def defects(self) -> frozenset[str]:
        return IMPLEMENTED

    # ------------------------------------------------------------ config

    def _push(self) -> Token:
        return Token(self.name, self.cp.push(self.policy))

    def apply(self, intent: Intent) -> Token:
        self.policy = self.policy.with_intent(intent)
        return self._push()

    def apply_all(self, intents: list[Intent]) -> Token:
        policy = self.policy
        for intent in intents:
            policy = policy.with_intent(intent)
        self.policy = policy
        return self._push()

    def remove(self, intent: Intent) -> Token:
        self.policy = self.policy.without(intent)
        return self._push()

    def reset(self) -> Token:
        self.policy = Policy()
        return self._push()

    def status(self) -> dict[str, Any]:
        return dict(self.cp.request("GET", "/status"))

    def _wait(self, token: Token, timeout: float) -> None:
        """Ask the control plane, which knows from its own nonces (and answers the moment
        every sidecar is programmed or one NACKed): no sidecar's admin socket is polled."""
        version = int(token.value)
        deadline = time.monotonic() + timeout
        nodes = ",".join(p.key for p in self.sidecars)
        while True:
            left = max(0.0, deadline - time.monotonic())
            answer = self.cp.request(
                "GET", f"/programmed?version={version}&nodes={nodes}&wait={min(left, 5.0):.3f}",
                timeout=min(left, 5.0) + 10)
            waiting: dict[str, str] = answer["pending"]
            nacked = {n: why for n, why in waiting.items() if "NACK" in why}
            if nacked:
                node, why = next(iter(nacked.items()))
                raise ConfigRejected(f"sidecar {node} rejected version {version}: {why}",
                                     "the last good config keeps serving; fix the intent")
            if not waiting:
                return
            if time.monotonic() >= deadline:
                first = "; ".join(f"{k}: {v}" for k, v in list(waiting.items())[:3])
                raise NotProgrammed(f"version {version} not programmed within {timeout}s: "
                                    f"{first}")

    def syncz(self) -> dict[str, Any]:
        """Per sidecar and xDS type: sent, ACKed, NACK (``meshproof mesh status``)."""
        return dict(self.cp.request("GET", "/debug/syncz"))

    # ------------------------------------------------------------ evidence

    def evidence(self, pods: list[Pod]) -> dict[str, Any]:
        """Generated config and Envoy's own view (config dump, stats) of these sidecars."""
        from refmesh.admin import EnvoyAdmin

        out: dict[str, Any] = {"policy": self.policy.to_dict(), "cp_status": self.status()}
        for p in pods:
            if not p.meshed:
                continue
            admin = EnvoyAdmin(admin_socket(p.namespace, p.name), timeout=5)
            try:
                out[p.key] = {"generated": self.cp.request("GET", f"/config/{p.key}"),
                              "config_dump": admin.config_dump(),
                              "stats": admin.stats(r"(rbac|ssl|upstream_rq|downstream_cx)")}
            except Exception as exc:  # evidence must never hide the verdict
                out[p.key] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    def tls_handshakes(self, pods: list[Pod]) -> dict[str, int] | None:
        """Each sidecar's ``ssl.handshake`` counters summed (Envoy's admin, over its
        Unix socket outside the pod network)."""
        from refmesh.admin import EnvoyAdmin

        return {p.key: sum(EnvoyAdmin(admin_socket(p.namespace, p.name), timeout=5)
                           .stats(r"ssl\.handshake$").values())
                for p in pods if p.meshed}

    # ------------------------------------------------------------ capabilities

    def issue_certificate(self, identity: Pod, ttl_s: int) -> IssuedCert:
        """A certificate for ``identity``'s workload from the mesh CA, as a pod's agent
        would get it: a CSR plus that pod's bootstrap token (the CA's token book)."""
        csr, key = csr_and_key(identity.identity)
        status, body = self._sign(identity, csr, ttl_s)
        if status != 200:
            raise MeshproofError(f"the mesh CA refused to sign {identity.identity}: {body}")
        return IssuedCert(body["cert"], key, body["root"], identity.identity)

    def request_certificate(self, credentials_of: Pod, identities: tuple[str, ...]
                            ) -> CertAnswer:
        """The pod's bootstrap token (its agent's credential) with a CSR naming
        ``identities``, to the CA exactly as the agent sends it."""
        from cryptography import x509

        from refmesh.pki import uri_sans

        status, body = self._sign(credentials_of, csr_and_key(*identities)[0], 60)
        if status != 200:
            return CertAnswer(tuple(identities), False,
                              f"{status}: {dict(body).get('error', body)}")
        cert = x509.load_pem_x509_certificate(str(body["cert"]).encode())
        return CertAnswer(tuple(identities), True, " ".join(uri_sans(cert)))

    def _sign(self, pod: Pod, csr: str, ttl_s: int) -> tuple[int, Any]:
        """POST a CSR to the CA with ``pod``'s bootstrap token."""
        from refmesh import unixhttp

        book = json.loads(TOKENS.read_text())
        token = next((t for t, who in book.items()
                      if (who["namespace"], who["service_account"])
                      == (pod.namespace, pod.service_account)), None)
        if token is None:
            raise MeshproofError(f"no bootstrap token for {pod.identity}")
        return unixhttp.request_json(CA_SOCKET, "POST", "/sign", {
            "csr": csr, "token": token, "ttl_seconds": ttl_s}, timeout=10)

    @contextmanager
    def impersonate(self, pod: Pod, as_pod: Pod) -> Iterator[None]:
        if not isinstance(self.target, MeshHost):
            raise self._lacks("impersonate")
        self.target.mesh_call("swap_identity", key=pod.key, as_pod=as_pod.key)
        try:
            yield
        finally:
            self.target.mesh_call("swap_identity", key=pod.key, as_pod=pod.key)

    @contextmanager
    def short_cert_ttl(self, ttl_s: int) -> Iterator[None]:
        """The CA issues every workload certificate for ``ttl_s`` seconds and the agents
        rotate at half life; entering returns once every sidecar serves such a
        certificate, leaving once every one serves a default-TTL certificate again. The
        setting is recorded under the run dir (``refpaths.CERT_TTL``) with this process's
        pid, so a killed run's setting is undone by the next adapter (or goes with the
        lab at ``meshproof down``)."""
        if not isinstance(self.target, MeshHost):
            raise self._lacks("short-cert-ttl")
        if ttl_s < 2:
            raise MeshproofError(f"short_cert_ttl({ttl_s}): the CA's shortest TTL is 2 s")
        self.target.mesh_call("set_cert_ttl", ttl_s=int(ttl_s), owner_pid=os.getpid())
        try:
            yield
        finally:
            self.target.mesh_call("set_cert_ttl", ttl_s=None)

    def undo_stale_cert_ttl(self) -> bool:
        """A short TTL left in force by a run that died (its owner pid is gone): set the
        default back. True if there was one."""
        try:
            owner = int(json.loads(CERT_TTL.read_text()).get("owner_pid") or 0)
        except (OSError, ValueError, AttributeError):
            return False
        if owner and _alive(owner) or not isinstance(self.target, MeshHost):
            return False
        self.target.mesh_call("set_cert_ttl", ttl_s=None)
        return True

    def bypass_probe(self, src: Pod, order: ProbeOrder) -> list[ProbeResult]:
        """As the pod's proxy uid, which the capture rules exempt (as Istio's do)."""
        return self.target.probe(src, order, in_sidecar=True)


class ReferenceAcked(ReferenceMesh):
    """``--mesh reference-acked``: programmed from the control plane's ACKs alone, as an
    ACK-based third-party adapter decides it (Istio's syncz: acked == sent). Since the
    control plane decides programmed itself (warming inferred from the order of ACKs,
    ``refmesh.controlplane``) and the reference adapter no longer reads any Envoy, the
    two modes use the same method; the name stays for the programmed-signal checks and
    their negative control (``acked-on-send``), which now shows in both."""

    name = "reference-acked"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
