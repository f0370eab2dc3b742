"""CA and agent as real processes: token-bound signing, SDS delivery to a real Envoy, rotation."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509

from meshproof.targets.model import spiffe_id
from refmesh import pki, unixhttp

from .conftest import Procs, wait_for
from .helpers import start_agent, start_sidecar


def test_ca_signs_matching_csr_and_refuses_foreign_identity(ca: Path, procs: Procs) -> None:
    unixhttp.request_json(ca, "PUT", "/tokens/t-reviews",
                          {"namespace": "bookinfo", "service_account": "reviews"})
    key = pki.new_key()
    own = spiffe_id("bookinfo", "reviews")
    st, out = unixhttp.request_json(ca, "POST", "/sign",
                                    {"csr": pki.make_csr(key, own).decode(), "token": "t-reviews"})
    assert st == 200, out
    cert = x509.load_pem_x509_certificate(out["cert"].encode())
    assert pki.uri_sans(cert) == [own]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    root = x509.load_pem_x509_certificate(unixhttp.request(ca, "GET", "/root")[1])
    cert.verify_directly_issued_by(root)

    foreign = spiffe_id("bookinfo", "ratings")
    st, out = unixhttp.request_json(ca, "POST", "/sign",
                                    {"csr": pki.make_csr(key, foreign).decode(), "token": "t-reviews"})
    assert st == 403 and "bound to " + own in out["error"]
    st, out = unixhttp.request_json(ca, "POST", "/sign",
                                    {"csr": pki.make_csr(key, own).decode(), "token": "stolen?"})
    assert st == 403 and "unknown bootstrap token" in out["error"]
    wait_for(lambda: "REFUSED" in procs.log("ca") and foreign in procs.log("ca"), 5, "CA refusal log")


def test_ca_reads_token_file(procs: Procs, sockdir: Path) -> None:
    tokens = sockdir / "tokens.json"
    tokens.write_text(json.dumps({"t1": {"namespace": "team-a", "service_account": "echo"}}))
    sock = sockdir / "ca2.sock"
    procs.python("ca2", "refmesh.ca", "--state-dir", str(sockdir / "st2"), "--socket", str(sock),
                 "--tokens", str(tokens))
    wait_for(lambda: unixhttp.request(sock, "GET", "/healthz", timeout=1)[0] == 200, 10, "CA up")
    key = pki.new_key()
    st, _ = unixhttp.request_json(sock, "POST", "/sign", {
        "csr": pki.make_csr(key, spiffe_id("team-a", "echo")).decode(), "token": "t1"})
    assert st == 200
    assert oct((sockdir / "st2" / "root-key.pem").stat().st_mode & 0o777) == "0o600"


def test_agent_serves_svid_to_envoy_and_rotation_is_picked_up(
        ca: Path, procs: Procs, sockdir: Path, envoy_bin: str) -> None:
    sds = start_agent(procs, sockdir, ca, "bookinfo", "details", "details", "--ttl", "4")
    keys = sockdir / "keys-details"
    assert oct(keys.stat().st_mode & 0o777) == "0o700"
    assert oct((keys / "key.pem").stat().st_mode & 0o777) == "0o600"
    # An Envoy with a static mTLS listener asks the agent for "default" and "ROOTCA".
    from refmesh.bootstrap import SidecarPaths, bootstrap, EnvoyCommand, write_bootstrap
    from refmesh.xds import tls
    from .conftest import free_port

    lst = {"name": "tls", "address": {"socket_address": {"address": "127.0.0.1", "port_value": free_port()}},
           "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
               "stat_prefix": "t", "cluster": "sds-grpc"}}],
               "transport_socket": tls.downstream_mtls()}]}
    paths = SidecarPaths(str(sockdir / "no-ads"), str(sds), str(sockdir / "admin.sock"))
    cfg = write_bootstrap(sockdir / "e.json", bootstrap("bookinfo/details-0", paths,
                                                        static_listeners=[lst], dynamic=False))
    procs.start("envoy", EnvoyCommand(envoy_bin, str(cfg)).argv())
    from refmesh.admin import EnvoyAdmin

    admin = EnvoyAdmin(paths.admin_socket)
    wait_for(lambda: spiffe_id("bookinfo", "details") in admin.cert_uris(), 15, "SVID in Envoy /certs")
    first = admin.cert_serials()
    wait_for(lambda: admin.cert_serials() - {""} and admin.cert_serials() != first, 15,
             "renewed SVID in Envoy /certs")
    status = json.loads((keys / "svid.json").read_text())
    assert status["generation"] >= 2
    assert status["serial"] in admin.cert_serials()


def _lifetime(out: dict) -> float:
    cert = x509.load_pem_x509_certificate(out["cert"].encode())
    import datetime as dt

    return (cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)).total_seconds()


def test_ca_ttl_file_overrides_the_default_while_it_exists(procs: Procs, sockdir: Path) -> None:
    """The short-cert-ttl setting: the CA's default lifetime from --ttl-file, re-read on
    change; an explicit ttl_seconds still wins; without the file the default is back."""
    ttl_file, sock = sockdir / "cert-ttl.json", sockdir / "ca3.sock"
    procs.python("ca3", "refmesh.ca", "--state-dir", str(sockdir / "st3"), "--socket", str(sock),
                 "--ttl-file", str(ttl_file))
    wait_for(lambda: sock.exists() and unixhttp.request(sock, "GET", "/healthz", timeout=1)[0]
             == 200, 10, "CA up")
    unixhttp.request_json(sock, "PUT", "/tokens/t", {"namespace": "team-a", "service_account": "x"})

    def sign(**extra: int) -> dict:
        st, out = unixhttp.request_json(sock, "POST", "/sign", {
            "csr": pki.make_csr(pki.new_key(), spiffe_id("team-a", "x")).decode(),
            "token": "t", **extra})
        assert st == 200, out
        return out

    assert _lifetime(sign()) > 3000
    ttl_file.write_text(json.dumps({"ttl_s": 5, "owner_pid": 1}))
    assert _lifetime(sign()) <= 5
    assert _lifetime(sign(ttl_seconds=600)) > 500
    ttl_file.unlink()
    assert _lifetime(sign()) > 3000


def test_ca_sign_any_defect_signs_a_foreign_identity(procs: Procs, sockdir: Path) -> None:
    """ca-signs-any (--sign-any): a known token gets another workload's identity."""
    sock = sockdir / "ca4.sock"
    procs.python("ca4", "refmesh.ca", "--state-dir", str(sockdir / "st4"), "--socket", str(sock),
                 "--sign-any")
    wait_for(lambda: sock.exists() and unixhttp.request(sock, "GET", "/healthz", timeout=1)[0]
             == 200, 10, "CA up")
    unixhttp.request_json(sock, "PUT", "/tokens/t", {"namespace": "team-a", "service_account": "x"})
    foreign = spiffe_id("team-b", "echo")
    st, out = unixhttp.request_json(sock, "POST", "/sign", {
        "csr": pki.make_csr(pki.new_key(), foreign).decode(), "token": "t"})
    assert st == 200
    assert pki.uri_sans(x509.load_pem_x509_certificate(out["cert"].encode())) == [foreign]


def test_agent_renews_at_once_on_sighup_and_never_on_a_timer_with_no_rotate(
        ca: Path, procs: Procs, sockdir: Path) -> None:
    """SIGHUP renews now (the TTL setting changed); --no-rotate (rotation-stopped) arms no
    renewal timer, so a 3 s certificate is not renewed at half life."""
    import os
    import signal
    import time

    start_agent(procs, sockdir, ca, "team-a", "r", "r", "--ttl", "3", "--no-rotate")
    status = sockdir / "keys-r" / "svid.json"
    gen = json.loads(status.read_text())["generation"]
    time.sleep(2.5)  # past half life: a rotating agent would have renewed
    assert json.loads(status.read_text())["generation"] == gen
    agent = next(p for name, p in procs.procs if name == "agent-r")
    os.kill(agent.pid, signal.SIGHUP)
    wait_for(lambda: json.loads(status.read_text())["generation"] > gen, 5, "renewal on SIGHUP")
