"""The mesh adapter interface (DESIGN.md): how a check drives any mesh.

A check states an intent; the adapter turns it into the mesh's own resources
(``apply``, which returns an opaque ``Token``), waits until the mesh has
programmed it (``wait_programmed(token)``), and on failure hands over
evidence. What a mesh can do beyond that is declared, by name, in
``capabilities()`` (``CAPABILITIES``), and a check needing one the adapter
lacks is skipped with the reason. Adapters never import a target's engine:
they get the ``Target`` they run on and use its interface.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from meshproof.errors import MeshproofError
from meshproof.intent import Intent
from meshproof.targets.base import Target
from meshproof.targets.model import Pod, ProbeOrder, ProbeResult

#: Optional capabilities a mesh adapter may declare, and what each means.
CAPABILITIES = {
    "issue-certificate": "issue a workload certificate for an identity with a given TTL",
    "impersonate": "make one workload's sidecar serve another workload's valid identity",
    "bypass-sidecar": "send from inside a pod around its sidecar (as the proxy's identity)",
    "short-cert-ttl": "issue and rotate workload certificates with a short TTL for a while "
                      "(rotation checks, CA-outage experiments)",
    "request-certificate": "ask the mesh's issuing path, with one workload's own credentials, "
                           "for a certificate naming given identities (its CA must refuse "
                           "any identity but that workload's)",
}


class NotProgrammed(MeshproofError):
    """The mesh did not program a change within its timeout (or refused it)."""

    exit_code = 1


class ConfigRejected(NotProgrammed):
    """A sidecar NACKed the config: the mesh keeps serving the last good one."""


@dataclass(frozen=True)
class Token:
    """What ``apply`` returns and ``wait_programmed`` accepts; opaque to checks."""

    mesh: str
    value: Any


@dataclass(frozen=True)
class MeshInfo:
    """What the report says about the mesh under test."""

    name: str
    version: str
    #: How "programmed" is decided: ``acked`` (per-proxy sync status) or ``sentinel``.
    programmed_method: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IssuedCert:
    """A workload certificate, its key and the mesh's root, as PEM."""

    cert: str
    key: str
    root: str
    identity: str


@dataclass(frozen=True)
class CertAnswer:
    """What the mesh's issuing path answered a workload asking for ``asked``."""

    asked: tuple[str, ...]
    granted: bool
    #: The refusal's reason, or the identities the issued certificate names.
    detail: str


@dataclass
class Wait:
    """One ``wait_programmed``: how long it took (the report shows them per check)."""

    seconds: float
    method: str


class MeshAdapter(ABC):
    """A mesh under test. Implementations: ``mesh.reference`` (ACK-driven),
    ``mesh.blackbox`` (policy files and the sentinel method only)."""

    #: Registry name (``--mesh``).
    name: str = ""

    def __init__(self, target: Target) -> None:
        self.target = target
        #: Every wait of this session, in order (the plugin slices them per check).
        self.waits: list[Wait] = []

    # ------------------------------------------------------------ declarations

    @abstractmethod
    def claims(self) -> frozenset[str]:
        """Features (meshproof.conformance.check.FEATURES) this mesh implements."""

    @abstractmethod
    def describe(self) -> MeshInfo: ...

    def capabilities(self) -> frozenset[str]:
        """The subset of ``CAPABILITIES`` this adapter offers (none by default)."""
        return frozenset()

    def defects(self) -> frozenset[str]:
        """Defect IDs this mesh can be brought up with (negative controls)."""
        return frozenset()

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities()

    # ------------------------------------------------------------ config

    @abstractmethod
    def apply(self, intent: Intent) -> Token: ...

    @abstractmethod
    def apply_all(self, intents: list[Intent]) -> Token:
        """Apply several intents as one change (a policy file is atomic)."""

    @abstractmethod
    def remove(self, intent: Intent) -> Token: ...

    @abstractmethod
    def reset(self) -> Token:
        """Back to no policy at all (the mesh's defaults)."""

    def wait_programmed(self, token: Token, timeout: float = 10.0) -> float:
        """Block until the change behind ``token`` is in force; returns the seconds it
        took. Raises NotProgrammed (ConfigRejected for a NACK) otherwise."""
        if token.mesh != self.name:
            raise MeshproofError(f"a token of mesh {token.mesh!r} given to {self.name!r}")
        t0 = time.monotonic()
        self._wait(token, timeout)
        took = time.monotonic() - t0
        self.waits.append(Wait(took, self.describe().programmed_method))
        return took

    @abstractmethod
    def _wait(self, token: Token, timeout: float) -> None: ...

    # ------------------------------------------------------------ evidence and timing

    def evidence(self, pods: list[Pod]) -> dict[str, Any]:
        """Config dumps, proxy stats, logs of these pods' sidecars, for a failure."""
        return {}

    def tls_handshakes(self, pods: list[Pod]) -> dict[str, int] | None:
        """TLS handshakes each of these pods' sidecars completed so far, from the mesh's
        own counters: load reports show them as proof a meshed path was mTLS. None: this
        mesh cannot tell."""
        return None

    def timer_granularity_s(self) -> float:
        """How early or late the data plane's timers may fire. Envoy-based meshes run
        on libevent's coarse clock: one tick of the node's CLOCK_MONOTONIC_COARSE."""
        return self.target.clock_tick_s()

    # ------------------------------------------------------------ optional capabilities

    def issue_certificate(self, identity: Pod, ttl_s: int) -> IssuedCert:
        raise self._lacks("issue-certificate")

    def request_certificate(self, credentials_of: Pod, identities: tuple[str, ...]
                            ) -> CertAnswer:
        """With ``credentials_of``'s own workload credentials (what its pod holds), ask
        the mesh's issuing path for a certificate naming ``identities``. A correct CA
        grants the pod's own identity alone and refuses anything else."""
        raise self._lacks("request-certificate")

    @contextmanager
    def impersonate(self, pod: Pod, as_pod: Pod) -> Iterator[None]:
        """While inside, ``pod``'s sidecar serves ``as_pod``'s valid identity."""
        raise self._lacks("impersonate")
        yield  # pragma: no cover

    def bypass_probe(self, src: Pod, order: ProbeOrder) -> list[ProbeResult]:
        """Send from ``src`` around its sidecar (what a compromised or careless process in
        the pod could do): plaintext straight onto the pod network."""
        raise self._lacks("bypass-sidecar")

    @contextmanager
    def short_cert_ttl(self, ttl_s: int) -> Iterator[None]:
        """While inside, the mesh issues every workload certificate valid for ``ttl_s``
        seconds and rotates each before it expires, as it would in production; on exit
        (and after a killed run, by the next one) the mesh's default TTL is back.
        Rotation checks and the CA-outage experiment need it; a mesh whose TTL cannot be
        shortened lacks it and those are skipped with the reason."""
        raise self._lacks("short-cert-ttl")
        yield  # pragma: no cover

    def _lacks(self, capability: str) -> MeshproofError:
        return MeshproofError(f"mesh {self.name!r} does not offer {capability!r}",
                              "checks needing it are skipped for this mesh")


class DeclaredResources:
    """For adapters that state the *whole* set of intents on every change, as a user's
    ``kubectl apply`` of all their policy files would (the black box, Istio): the set
    lives here; ``_publish`` renders and applies it and returns the change's token."""

    resources: dict[str, Intent]

    def _publish(self) -> Token:
        raise NotImplementedError

    def apply(self, intent: Intent) -> Token:
        self.resources[intent.key] = intent
        return self._publish()

    def apply_all(self, intents: list[Intent]) -> Token:
        for intent in intents:
            self.resources[intent.key] = intent
        return self._publish()

    def remove(self, intent: Intent) -> Token:
        self.resources.pop(intent.key, None)
        return self._publish()

    def reset(self) -> Token:
        self.resources.clear()
        return self._publish()


class NoMesh(MeshAdapter):
    """``--mesh none``: the topology without a mesh. Claims nothing, so every check is
    skipped with its reason; applying an intent is an error."""

    name = "none"

    def claims(self) -> frozenset[str]:
        return frozenset()

    def describe(self) -> MeshInfo:
        return MeshInfo("none", "-", "none")

    def _refuse(self) -> Token:
        raise MeshproofError("no mesh is installed: there is nothing to apply an intent to",
                             "run with --mesh reference (or another mesh)")

    def apply(self, intent: Intent) -> Token:
        return self._refuse()

    def apply_all(self, intents: list[Intent]) -> Token:
        return self._refuse()

    def remove(self, intent: Intent) -> Token:
        return self._refuse()

    def reset(self) -> Token:
        return Token(self.name, None)

    def _wait(self, token: Token, timeout: float) -> None:
        return None
