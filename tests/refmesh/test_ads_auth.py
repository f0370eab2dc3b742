"""No impersonation: only a pod's proxy uid may claim its node on the ADS socket.

The ADS socket is world-writable (every sidecar runs as its own uid), so the
control plane decides by the kernel's word on the peer (SO_PEERCRED), never
by the node id a stream names. An app uid and another pod's proxy uid are
refused (PERMISSION_DENIED, with a logged reason), even when their first
message is a NACK meant to poison "programmed"; the real sidecar keeps
being served and its ACK state is untouched.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meshproof.intent import MTLSMode, Policy
from meshproof.targets.model import Pod, Registry
from refmesh.controlplane import programmed
from refmesh.state import registry_to_dict

from .conftest import ENV, Procs, free_port, wait_for
from .helpers import EchoApp, start_agent, start_sidecar
from .registry_fixture import small_registry
from .test_controlplane import put, start_cp, status, wait_programmed

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs clients as other uids (root)")

PP, RV = "bookinfo/productpage-v1-0", "bookinfo/reviews-v1-0"
PP_UID, RV_UID, APP_UID = 20101, 20102, 30101  # productpage's proxy, reviews' proxy, an app
CLIENT = Path(__file__).with_name("ads_client.py")


def registry(*extra: Pod) -> Registry:
    """small_registry with a distinct proxy uid per pod (the lab's shape)."""
    reg = small_registry()
    uids = {PP: PP_UID, RV: RV_UID}
    pods = [dataclasses.replace(p, proxy_uid=uids.get(p.key, 20199 - i))
            for i, p in enumerate(reg.pods)]
    return Registry(reg.services, pods + list(extra))


def claim(uid: int, ads: Path, node: str, *flags: str) -> dict[str, Any]:
    """Run the bare ADS client as ``uid``, claiming ``node``; its JSON verdict."""
    cp = subprocess.run([sys.executable, str(CLIENT), str(ads), node, "--as-uid", str(uid),
                         *flags], env=ENV, capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def grpc_port(log: str) -> int:
    m = re.search(r"authenticated relay to 127\.0\.0\.1:(\d+)", log)
    assert m, log
    return int(m.group(1))


def test_impostors_are_refused_and_the_real_sidecar_is_still_served(
        ca: Path, procs: Procs, sockdir: Path, envoy_bin: str) -> None:
    app = EchoApp()
    try:
        inbound = free_port()
        ads, api = start_cp(procs, sockdir)
        v1 = put(api, "/state", {
            "registry": registry_to_dict(registry()), "policy": Policy().to_dict(),
            "options": {"bind_address": "127.0.0.1", "outbound_port": free_port(),
                        "inbound_port": inbound, "inbound_match_port": inbound,
                        "app_port": app.port}})
        sds = start_agent(procs, sockdir, ca, "bookinfo", "productpage", "pp",
                          "--proxy-uid", str(PP_UID))
        admin = start_sidecar(procs, envoy_bin, sockdir, PP, ads, sds, uid=PP_UID)
        wait_for(lambda: programmed(status(api), v1, [PP]) and admin.warming() == 0, 15,
                 f"{PP} programmed at {v1}")
        real = status(api)["nodes"][PP]

        # An app uid and another pod's proxy uid (and root, which is neither) claim PP:
        # refused with the reason, whether they open with a request or with a NACK.
        for uid in (APP_UID, RV_UID, 0):
            for flags in ((), ("--nack",)):
                out = claim(uid, ads, PP, *flags)
                assert out["code"] == "PERMISSION_DENIED" and out["resources"] == 0, (uid, out)
                assert f"uid {uid} " in out["details"] and f"proxy uid {PP_UID}" in out["details"]
        assert "is the proxy uid of " + RV in claim(RV_UID, ads, PP)["details"]
        assert "is no pod's proxy uid" in claim(APP_UID, ads, PP)["details"]
        # Bypassing the Unix socket (straight to the gRPC port) gives no peer: refused.
        port = grpc_port(procs.log("cp"))
        out = claim(0, ads, PP, "--tcp", f"127.0.0.1:{port}")
        assert out["code"] == "PERMISSION_DENIED" and "no peer credentials" in out["details"]

        # Logged with the reason, listed under "refused"; the node's own record is untouched.
        log = procs.log("cp")
        assert f"refused ADS stream claiming {PP}: uid {APP_UID} " in log
        assert f"refused ADS stream claiming {PP}: uid {RV_UID} " in log
        st = status(api)
        assert {r["uid"] for r in st["refused"]} >= {APP_UID, RV_UID, 0, None}
        assert st["nodes"][PP] == real, "an impostor changed the real sidecar's status"
        assert set(st["nodes"]) == {PP}

        # A node the registry does not know yet: the claim waits unanswered, then is
        # refused once the registry names the node with another proxy uid.
        late = Pod("bookinfo", "late-0", "late", "198.18.0.30", {"app": "late"}, "late", True,
                   ready=True, proxy_uid=20150)
        waiting = subprocess.Popen([sys.executable, str(CLIENT), str(ads), late.key,
                                    "--as-uid", str(APP_UID)], env=ENV,
                                   stdout=subprocess.PIPE, text=True)
        wait_for(lambda: f"stream claiming {late.key} waits" in procs.log("cp"), 10,
                 "the unknown node's stream to wait")
        put(api, "/registry", registry_to_dict(registry(late)))
        out = json.loads(waiting.communicate(timeout=20)[0])
        assert out["code"] == "PERMISSION_DENIED" and "uid 30101 " in out["details"], out

        # The node's own proxy uid gets its config (the same check lets it through) ...
        mine = claim(PP_UID, ads, PP)
        assert mine["code"] == "OK" and mine["resources"] > 0, mine
        # ... and the real sidecar is still served: a new version reaches it and is ACKed.
        v2 = put(api, "/policy", Policy(mtls=(MTLSMode("STRICT", "bookinfo"),)).to_dict())
        wait_programmed(api, admin, v2)
        assert status(api)["nodes"][PP]["connected"]
    finally:
        app.close()
