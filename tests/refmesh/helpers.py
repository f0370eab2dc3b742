"""Small real-process helpers for the refmesh tests: an echo app, an Envoy sidecar, mTLS clients."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from meshproof.targets.model import spiffe_id
from refmesh import pki, unixhttp
from refmesh.admin import EnvoyAdmin
from refmesh.bootstrap import EnvoyCommand, SidecarPaths, as_uid, bootstrap, write_bootstrap

from .conftest import Procs, wait_for


class EchoApp:
    """An HTTP server on 127.0.0.1 that answers with the headers it saw (like the fixture app)."""

    def __init__(self) -> None:
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                body = json.dumps({"xfcc": self.headers.get("x-forwarded-client-cert", "")}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = int(self.srv.server_address[1])
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def proxy_dir(d: Path, uid: int) -> Path:
    """A dir owned by ``uid`` for what its Envoy writes (admin socket); ``d`` made traversable."""
    d.chmod(0o755)
    own = d / f"uid-{uid}"
    own.mkdir(exist_ok=True)
    os.chown(own, uid, uid)
    return own


def start_sidecar(procs: Procs, envoy_bin: str, d: Path, node: str, ads: Path, sds: Path,
                  uid: int | None = None) -> EnvoyAdmin:
    """An Envoy for ``node``; with ``uid``, as that uid (the control plane lets a node's
    proxy uid alone claim it: the registry's ``proxy_uid``)."""
    short = node.replace("/", "_")
    admin_dir = proxy_dir(d, uid) if uid is not None else d
    paths = SidecarPaths(str(ads), str(sds), str(admin_dir / f"admin-{short}.sock"))
    cfg = write_bootstrap(d / f"envoy-{short}.json", bootstrap(node, paths))
    argv = EnvoyCommand(envoy_bin, str(cfg)).argv()
    procs.start(f"envoy-{short}", as_uid(argv, uid) if uid is not None else argv)
    admin = EnvoyAdmin(paths.admin_socket)
    wait_for(lambda: Path(paths.admin_socket).exists(), 10, "Envoy admin socket")
    return admin


def start_agent(procs: Procs, d: Path, ca_sock: Path, ns: str, sa: str, name: str,
                *extra: str) -> Path:
    """Bind a token for ns/sa at the CA and start an agent; returns its SDS socket."""
    token = f"tok-{name}"
    st, _ = unixhttp.request_json(ca_sock, "PUT", f"/tokens/{token}",
                                  {"namespace": ns, "service_account": sa})
    assert st == 200
    (d / f"{name}.token").write_text(token)
    sds = d / f"sds-{name}.sock"
    procs.python(f"agent-{name}", "refmesh.agent", "--ca-socket", str(ca_sock), "--token-file",
                 str(d / f"{name}.token"), "--namespace", ns, "--service-account", sa,
                 "--sds-socket", str(sds), "--key-dir", str(d / f"keys-{name}"), *extra)
    wait_for(lambda: (d / f"keys-{name}" / "svid.json").exists(), 10, f"agent {name} SVID")
    return sds


def client_credentials(ca_sock: Path, d: Path, ns: str, sa: str) -> tuple[Path, Path, Path]:
    """A client SVID for ns/sa straight from the CA: (cert, key, root) files."""
    token = f"client-{ns}-{sa}"
    unixhttp.request_json(ca_sock, "PUT", f"/tokens/{token}", {"namespace": ns, "service_account": sa})
    key = pki.new_key()
    st, out = unixhttp.request_json(ca_sock, "POST", "/sign", {
        "csr": pki.make_csr(key, spiffe_id(ns, sa)).decode(), "token": token})
    assert st == 200, out
    files = (d / f"c-{sa}.pem", d / f"c-{sa}.key", d / "c-root.pem")
    files[0].write_text(out["cert"])
    files[1].write_bytes(pki.key_pem(key))
    files[2].write_text(out["root"])
    return files


def mtls_get(port: int, creds: tuple[Path, Path, Path]) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    """GET / over mTLS; returns (status, JSON body, server's URI SAN). Fresh connection."""
    ctx = ssl.create_default_context(cafile=str(creds[2]))
    ctx.check_hostname = False  # SPIFFE: identity is the URI SAN, checked below
    ctx.load_cert_chain(str(creds[0]), str(creds[1]))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        body = json.loads(r.read())
        peer = conn.sock.getpeercert()
        uris = [v for k, v in peer.get("subjectAltName", ()) if k == "URI"]
        return r.status, body, uris[0] if uris else ""
    finally:
        conn.close()


def plain_get(port: int) -> int | str:
    """GET / in plaintext; the status, or how the connection failed ("reset", "closed", ...)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    except ConnectionResetError:
        return "reset"
    except (http.client.RemoteDisconnected, http.client.BadStatusLine):
        return "closed"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, OSError) as e:
        return f"error: {e}"
    finally:
        conn.close()


def envoy_validate(envoy_bin: str, cfg: dict, path: Path) -> None:  # type: ignore[type-arg]
    """``envoy --mode validate``: the config would be accepted (no NACK in a lab run)."""
    path.write_text(json.dumps(cfg))
    r = subprocess.run([envoy_bin, "--mode", "validate", "-c", str(path), "--disable-hot-restart",
                        "--log-level", "error"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "OK" in r.stdout + r.stderr, r.stdout + r.stderr
