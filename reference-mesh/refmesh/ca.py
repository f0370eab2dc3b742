"""The reference mesh's CA: signs a pod's CSR only for the identity its bootstrap token is bound to.

Why tokens: a pod proves who it is with a secret the harness handed it
(like a Kubernetes service-account token). The CA checks that the CSR's
only URI SAN is exactly the SPIFFE ID bound to that token; anything else
(a foreign identity, extra SANs, an unknown token, a non-P-256 key) is
refused with HTTP 403 and logged, so a compromised pod cannot mint certs
for another workload.

Run::

    python -m refmesh.ca --state-dir DIR --socket PATH [--tokens FILE]
        [--trust-domain cluster.local] [--ttl 3600] [--min-ttl 2] [--max-ttl 86400]
        [--ttl-file FILE] [--sign-any]

State dir: ``root-key.pem`` (0600) and ``root-cert.pem``, created on first
start and reused after, so a restarted CA keeps the mesh's trust.

API (HTTP/JSON over the Unix socket, mode 0600: root only):

- ``GET  /healthz``            -> ``{"ok": true}``
- ``GET  /root``               -> root certificate PEM (text)
- ``POST /sign``  ``{"csr": PEM, "token": str, "ttl_seconds": int?}``
  -> 200 ``{"cert": PEM, "root": PEM, "spiffe_id", "serial", "not_after"}``
  or 403 ``{"error": reason}`` / 400 on malformed input.
- ``PUT  /tokens/<token>`` ``{"namespace": ns, "service_account": sa}`` binds a token.
- ``DELETE /tokens/<token>`` unbinds it.

Token bindings also come from ``--tokens FILE``, a JSON object
``{token: {"namespace": ns, "service_account": sa}}`` that the CA re-reads
whenever its mtime changes; PUT bindings are kept in memory on top of it.

``--sign-any`` is the ``ca-signs-any`` defect (a negative control, its one
place): a known token gets whatever URI SANs its CSR asks for.

``--ttl-file FILE`` (``{"ttl_s": N, ...}``, re-read on change like the token
file) overrides the default SVID lifetime while it exists: the mesh's
short-cert-ttl setting. A file rather than an API call so a restarted CA (a
CA-outage experiment) keeps issuing short certificates, and so the record a
killed run leaves under the run dir is the setting itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from meshproof.targets.model import TRUST_DOMAIN, spiffe_id
from refmesh import pki, unixhttp

log = logging.getLogger("refmesh.ca")

DEFAULT_TTL = 3600


class Refused(Exception):
    """The CSR is not signed; the message says why (it goes back to the caller)."""


@dataclass
class CA:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    trust_domain: str = TRUST_DOMAIN
    default_ttl: int = DEFAULT_TTL
    min_ttl: int = 2
    max_ttl: int = 86400
    #: Defect ``ca-signs-any``: sign the CSR's own SANs, whatever the token is bound to.
    sign_any: bool = False

    @classmethod
    def load_or_create(cls, state_dir: Path, trust_domain: str = TRUST_DOMAIN, **kw: Any) -> CA:
        """The CA whose root lives in ``state_dir``, creating it (0600 key) on first use."""
        state_dir.mkdir(parents=True, exist_ok=True)
        state_dir.chmod(0o700)
        kf, cf = state_dir / "root-key.pem", state_dir / "root-cert.pem"
        if kf.exists() and cf.exists():
            key = pki.load_key(kf.read_bytes())
            cert = x509.load_pem_x509_certificate(cf.read_bytes())
        else:
            key, cert = pki.new_root(trust_domain)
            pki.write_private(kf, pki.key_pem(key))
            cf.write_bytes(pki.cert_pem(cert))
            cf.chmod(0o644)
            log.info("created root CA in %s", state_dir)
        return cls(key, cert, trust_domain, **kw)

    @property
    def root_pem(self) -> bytes:
        return pki.cert_pem(self.root)

    def sign(self, csr_pem: bytes, identity: str, ttl_seconds: int | None = None) -> x509.Certificate:
        """Sign ``csr_pem`` iff its only URI SAN is ``identity``; else raise :class:`Refused`."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as e:
            raise Refused(f"CSR is not a PEM certificate request: {e}") from e
        if not csr.is_signature_valid:
            raise Refused("CSR signature is invalid (key does not match the request)")
        pub = csr.public_key()
        if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp256r1":
            raise Refused("CSR key must be ECDSA P-256")
        uris = pki.uri_sans(csr)
        if self.sign_any and uris:
            return pki.sign_svid(self.root_key, self.root, pub, uris[0],
                                 self._ttl(ttl_seconds), more=tuple(uris[1:]))
        if uris != [identity]:
            raise Refused(f"CSR asks for {uris or 'no URI SAN'}, token is bound to {identity}")
        try:
            other = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if len(list(other)) != 1:
                raise Refused("CSR carries SANs besides its SPIFFE ID")
        except x509.ExtensionNotFound as e:  # pragma: no cover - uris check above catches it
            raise Refused("CSR has no SAN") from e
        return pki.sign_svid(self.root_key, self.root, pub, identity, self._ttl(ttl_seconds))

    def _ttl(self, ttl_seconds: int | None) -> int:
        ttl = self.default_ttl if ttl_seconds is None else int(ttl_seconds)
        return max(self.min_ttl, min(self.max_ttl, ttl))


class TtlOverride:
    """The default-TTL override from ``--ttl-file`` (None: the CA's own default)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._mtime = -1.0
        self._ttl: int | None = None

    def get(self) -> int | None:
        if not self._path:
            return None
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            self._mtime, self._ttl = -1.0, None
            return None
        if mtime != self._mtime:
            try:
                self._ttl = int(json.loads(self._path.read_text())["ttl_s"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("ignoring unreadable TTL override %s: %s", self._path, e)
                self._ttl = None
            self._mtime = mtime
        return self._ttl


class TokenBook:
    """Token -> (namespace, service account), from a re-read JSON file plus PUTs."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._mtime = -1.0
        self._file: dict[str, tuple[str, str]] = {}
        self._put: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def _reload(self) -> None:
        if not self._path:
            return
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            self._file, self._mtime = {}, -1.0
            return
        if mtime == self._mtime:
            return
        data = json.loads(self._path.read_text() or "{}")
        self._file = {t: (b["namespace"], b["service_account"]) for t, b in data.items()}
        self._mtime = mtime

    def put(self, token: str, namespace: str, sa: str) -> None:
        with self._lock:
            self._put[token] = (namespace, sa)

    def delete(self, token: str) -> bool:
        with self._lock:
            return self._put.pop(token, None) is not None

    def lookup(self, token: str) -> tuple[str, str] | None:
        with self._lock:
            self._reload()
            return self._put.get(token) or self._file.get(token)


def token_tag(token: str) -> str:
    """A short non-secret tag for logs (never log the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:10]


def make_handler(ca: CA, tokens: TokenBook,
                 ttl_override: TtlOverride | None = None) -> unixhttp.Handler:
    def handle(method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/healthz":
            return 200, {"ok": True}
        if method == "GET" and path == "/root":
            return 200, ca.root_pem.decode()
        if path.startswith("/tokens/") and method in ("PUT", "DELETE"):
            token = path[len("/tokens/"):]
            if method == "DELETE":
                return (200 if tokens.delete(token) else 404), {"token": token_tag(token)}
            if not isinstance(body, dict) or not {"namespace", "service_account"} <= body.keys():
                return 400, {"error": "body must be {namespace, service_account}"}
            tokens.put(token, str(body["namespace"]), str(body["service_account"]))
            return 200, {"token": token_tag(token)}
        if method == "POST" and path == "/sign":
            return sign(body)
        return 404, {"error": f"no route {method} {path}"}

    def sign(body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or "csr" not in body or "token" not in body:
            return 400, {"error": "body must be {csr, token, ttl_seconds?}"}
        tag = token_tag(str(body["token"]))
        bound = tokens.lookup(str(body["token"]))
        if bound is None:
            log.warning("REFUSED token=%s: unknown bootstrap token", tag)
            return 403, {"error": "unknown bootstrap token"}
        identity = spiffe_id(*bound, trust_domain=ca.trust_domain)
        ttl = body.get("ttl_seconds")
        if ttl is None and ttl_override is not None:
            ttl = ttl_override.get()
        try:
            cert = ca.sign(str(body["csr"]).encode(), identity, ttl)
        except Refused as e:
            log.warning("REFUSED token=%s identity=%s: %s", tag, identity, e)
            return 403, {"error": str(e)}
        log.info("signed %s serial=%x not_after=%s", " ".join(pki.uri_sans(cert)),
                 cert.serial_number, cert.not_valid_after_utc.isoformat())
        return 200, {"cert": pki.cert_pem(cert).decode(), "root": ca.root_pem.decode(),
                     "spiffe_id": identity, "serial": f"{cert.serial_number:x}",
                     "not_after": cert.not_valid_after_utc.isoformat()}

    return handle


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m refmesh.ca", description=__doc__.split("\n")[0])
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--socket", type=Path, required=True)
    ap.add_argument("--tokens", type=Path, default=None, help="JSON token bindings, re-read on change")
    ap.add_argument("--trust-domain", default=TRUST_DOMAIN)
    ap.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="default SVID lifetime (s)")
    ap.add_argument("--ttl-file", type=Path, default=None,
                    help="JSON {ttl_s} overriding --ttl while it exists (re-read on change)")
    ap.add_argument("--min-ttl", type=int, default=2)
    ap.add_argument("--max-ttl", type=int, default=86400)
    ap.add_argument("--sign-any", action="store_true",
                    help="defect ca-signs-any: sign any URI SANs a known token asks for")
    ap.add_argument("--log-level", default="INFO")
    a = ap.parse_args(argv)
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ca = CA.load_or_create(a.state_dir, a.trust_domain, default_ttl=a.ttl,
                           min_ttl=a.min_ttl, max_ttl=a.max_ttl, sign_any=a.sign_any)
    srv = unixhttp.serve(a.socket, make_handler(ca, TokenBook(a.tokens),
                                                   TtlOverride(a.ttl_file)), mode=0o600)
    log.info("CA listening on %s", a.socket)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    srv.shutdown()
    a.socket.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
