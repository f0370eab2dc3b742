"""The node agent: one process, every pod's identity still its own.

A pod's SDS socket serves that pod's SVID only, and only that pod's proxy uid
can connect to it; an identity is issued only with the bootstrap token bound
to it (another pod's token gets nothing); the control API is root's alone.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from meshproof.targets.model import spiffe_id
from refmesh import pki, unixhttp
from refmesh.agent import CERT_SECRET, SECRET_TYPE
from refmesh.nodeagent import pod_spec

from .conftest import Procs, wait_for, wait_socket

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="pods' uids need root")
UID_A, UID_B = 20951, 20952


def _bind(ca: Path, d: Path, name: str, ns: str, sa: str) -> Path:
    token = f"tok-{name}"
    assert unixhttp.request_json(ca, "PUT", f"/tokens/{token}",
                                 {"namespace": ns, "service_account": sa})[0] == 200
    (d / f"{name}.token").write_text(token)
    return d / f"{name}.token"


def _spec(d: Path, name: str, ns: str, sa: str, token: Path, uid: int) -> dict[str, object]:
    pod = d / "pods" / name
    pod.mkdir(parents=True, exist_ok=True)
    for p in (d, d / "pods", pod):  # traversable by the pod uids, as a lab's sidecar dir is
        p.chmod(0o755)
    return {"namespace": ns, "service_account": sa, "token_file": str(token),
            "sds_socket": str(pod / "sds.sock"), "key_dir": str(pod / "keys"), "proxy_uid": uid}


def _served_identity(sds: Path) -> list[str]:
    """The URI SANs of the ``default`` secret the socket serves (asked as root)."""
    with grpc.insecure_channel(f"unix:{sds}") as ch:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(ch)
        req = discovery_pb2.DiscoveryRequest(type_url=SECRET_TYPE, resource_names=[CERT_SECRET])
        resp = next(stub.StreamSecrets(iter([req]), timeout=10))
    from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

    secret = secret_pb2.Secret()
    resp.resources[0].Unpack(secret)
    cert = x509.load_pem_x509_certificate(secret.tls_certificate.certificate_chain.inline_bytes)
    return pki.uri_sans(cert)


def _connect_as(uid: int, path: Path) -> int:
    """errno of connecting to the Unix socket ``path`` as ``uid`` (0: connected)."""
    pid = os.fork()
    if pid == 0:  # child: no gRPC here, only a raw connect
        code = 0
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(path))
        except OSError as exc:
            code = exc.errno or 1
        os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_one_agent_keeps_each_pods_identity_its_own(ca: Path, procs: Procs,
                                                     sockdir: Path) -> None:
    api = sockdir / "nodeagent.sock"
    procs.python("nodeagent", "refmesh.nodeagent", "--ca-socket", str(ca),
                 "--api-socket", str(api))
    wait_socket(api)
    tok_a = _bind(ca, sockdir, "a", "team-a", "echo")
    tok_b = _bind(ca, sockdir, "b", "team-b", "echo")
    a = _spec(sockdir, "a", "team-a", "echo", tok_a, UID_A)
    b = _spec(sockdir, "b", "team-b", "echo", tok_b, UID_B)
    for key, spec in (("team-a/a", a), ("team-b/b", b)):
        st, out = unixhttp.request_json(api, "PUT", f"/pods/{key}", spec)
        assert st == 200, out
    keys = {k: Path(str(s["key_dir"])) for k, s in (("a", a), ("b", b))}
    wait_for(lambda: all((p / "cert.pem").exists() for p in keys.values()), 15, "both SVIDs")

    # Each socket serves its own pod's identity, and only its proxy uid may connect.
    sds_a, sds_b = Path(str(a["sds_socket"])), Path(str(b["sds_socket"]))
    assert _served_identity(sds_a) == [spiffe_id("team-a", "echo")]
    assert _served_identity(sds_b) == [spiffe_id("team-b", "echo")]
    assert _connect_as(UID_A, sds_a) == 0
    assert _connect_as(UID_A, sds_b) == errno.EACCES
    assert _connect_as(UID_B, sds_a) == errno.EACCES
    for d in keys.values():
        assert oct(d.stat().st_mode & 0o777) == "0o700"
    assert keys["a"].stat().st_uid == UID_A and keys["b"].stat().st_uid == UID_B
    # The control API is root's: a pod uid cannot register itself as someone else.
    assert _connect_as(UID_A, api) == errno.EACCES

    # Identity bound to the token: a pod claiming team-b/echo with team-a's token gets
    # nothing (the CA refuses), and keeps no certificate.
    c = _spec(sockdir, "c", "team-b", "echo", tok_a, UID_A)
    assert unixhttp.request_json(api, "PUT", "/pods/team-a/c", c)[0] == 200
    wait_for(lambda: "bound to" in procs.log("nodeagent"), 10, "the CA's refusal in the log")
    assert not (Path(str(c["key_dir"])) / "cert.pem").exists()
    pods = unixhttp.request_json(api, "GET", "/pods")[1]
    assert pods["team-a/c"]["generation"] == 0 and pods["team-a/a"]["generation"] >= 1

    # Removing a pod removes its socket; bad specs are refused with the field named.
    assert unixhttp.request_json(api, "DELETE", "/pods/team-a/c")[0] == 200
    assert not Path(str(c["sds_socket"])).exists()
    st, out = unixhttp.request_json(api, "PUT", "/pods/team-a/x", {"namespace": "team-a"})
    assert st == 400 and "service_account" in out["error"]


def test_pod_spec_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown fields"):
        pod_spec({"namespace": "a", "service_account": "b", "sds_socket": "/x",
                  "key_dir": "/y", "token_file": "/t", "uid": 3})
    with pytest.raises(ValueError, match="token_file"):
        pod_spec({"namespace": "a", "service_account": "b", "sds_socket": "/x", "key_dir": "/y"})
