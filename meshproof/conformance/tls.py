"""A check's own mTLS client: credentials put into a pod, requests straight to a pod.

The check itself speaks TLS (the target's ``probe-tls``) when it needs to see what a
mesh's sidecar presents or accepts on a fresh handshake, which traffic through a
client sidecar cannot show (its upstream TLS connections are pooled and reused).
"""

from __future__ import annotations

from meshproof.probe import send
from meshproof.targets.base import Target
from meshproof.targets.model import Pod, ProbeResult, TLSFiles


def put_tls_files(target: Target, src: Pod, name: str, cert: str, key: str,
                  root: str) -> TLSFiles:
    """Client certificate, key and the CA to verify the server with, put into ``src``."""
    files = {k: target.put_file(src, f"{name}-{k}.pem", v)
             for k, v in (("cert", cert), ("key", key), ("ca", root))}
    return TLSFiles(cert=files["cert"], key=files["key"], ca=files["ca"])


def tls_probe(target: Target, src: Pod, dst: Pod, tls: TLSFiles, count: int = 3,
              path: str = "/echo", timeout_s: float = 3.0) -> list[ProbeResult]:
    """``count`` fresh mTLS handshakes and requests from ``src`` to ``dst``'s app port
    (through ``dst``'s sidecar on a meshed pod); the server's certificate is verified
    against ``tls.ca`` (chain and validity period)."""
    return send(target, src, f"https://{dst.ip}:{dst.port}{path}", count,
                timeout_s=timeout_s, tls=tls)
