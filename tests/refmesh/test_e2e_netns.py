"""End to end through two hops of sidecars, in a private netns with istio-init-style capture.

client -> [client sidecar: VIP listener, split, upstream mTLS pinned to the
reviews identity] -> [reviews sidecar: inbound mTLS, XFCC] -> app. Proves
the outbound half of the generated config, which the loopback tests cannot
reach (it needs SO_ORIGINAL_DST from a nat rule).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from meshproof.intent import MTLSMode, Policy, TrafficSplit
from meshproof.targets.model import Pod, Registry, Service, ServiceSpec, spiffe_id
from refmesh.admin import EnvoyAdmin
from refmesh.bootstrap import EnvoyCommand, SidecarPaths, bootstrap, write_bootstrap
from refmesh.controlplane import pending, programmed
from refmesh.state import registry_to_dict

from .conftest import Procs, wait_for
from .helpers import start_agent
from .test_controlplane import put, start_cp, status

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables"),
    reason="needs root, unshare and iptables (private netns)")

CLIENT, V1, V2 = "bookinfo/client-0", "bookinfo/reviews-v1-0", "bookinfo/reviews-v2-0"


def registry() -> Registry:
    def pod(name: str, wl: str, ip: str, sa: str, **labels: str) -> Pod:
        return Pod("bookinfo", name, wl, ip, labels, sa, True, ready=True)

    return Registry(
        services=[Service(ServiceSpec("bookinfo", "reviews", {"app": "reviews"}), "198.19.0.11"),
                  Service(ServiceSpec("bookinfo", "reviews-v1", {"app": "reviews", "version": "v1"}), "198.19.0.12"),
                  Service(ServiceSpec("bookinfo", "reviews-v2", {"app": "reviews", "version": "v2"}), "198.19.0.13")],
        pods=[pod("client-0", "client", "127.0.0.1", "client", app="client"),
              pod("reviews-v1-0", "reviews-v1", "127.0.0.2", "reviews", app="reviews", version="v1"),
              pod("reviews-v2-0", "reviews-v2", "127.0.0.3", "reviews", app="reviews", version="v2")])


class Driver:
    def __init__(self, proc: Any) -> None:
        self.p = proc
        line = self.p.stdout.readline()
        assert json.loads(line)["ready"], line

    def get(self, url: str, n: int = 1) -> list[dict[str, Any]]:
        self.p.stdin.write((json.dumps({"url": url, "n": n}) + "\n").encode())
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())  # type: ignore[no-any-return]


def test_split_flip_and_mtls_through_two_sidecars(ca: Path, procs: Procs, sockdir: Path,
                                                  envoy_bin: str) -> None:
    ads, api = start_cp(procs, sockdir)
    split = lambda w1, w2: TrafficSplit("bookinfo/reviews", (("reviews-v1", w1), ("reviews-v2", w2)))  # noqa: E731
    v = put(api, "/state", {
        "registry": registry_to_dict(registry()),
        "policy": Policy(mtls=(MTLSMode("STRICT"),), splits=(split(100, 0),)).to_dict(),
        "node_options": {CLIENT: {"outbound_port": 15001, "inbound_port": 15006},
                         V1: {"outbound_port": 16001, "inbound_port": 16006, "app_port": 18081},
                         V2: {"outbound_port": 17001, "inbound_port": 17006, "app_port": 18082}},
    })
    envoys, admins = [], {}
    for node, sa in ((CLIENT, "client"), (V1, "reviews"), (V2, "reviews")):
        short = node.split("/")[1]
        sds = start_agent(procs, sockdir, ca, "bookinfo", sa, short)
        paths = SidecarPaths(str(ads), str(sds), str(sockdir / f"admin-{short}.sock"))
        cfg = write_bootstrap(sockdir / f"{short}.json", bootstrap(node, paths))
        envoys.append({"argv": EnvoyCommand(envoy_bin, str(cfg)).argv(), "log": str(sockdir / f"envoy-{short}.log")})
        admins[node] = EnvoyAdmin(paths.admin_socket)
    spec = {
        "routes": ["local 198.19.0.0/16 dev lo"],
        # istio-init's shape, reduced: outbound to service VIPs -> client sidecar;
        # inbound to each reviews pod's app port -> that pod's sidecar.
        "rules": ["OUTPUT -p tcp -d 198.19.0.0/16 -j REDIRECT --to-ports 15001",
                  "OUTPUT -p tcp -d 127.0.0.2 --dport 9080 -j REDIRECT --to-ports 16006",
                  "OUTPUT -p tcp -d 127.0.0.3 --dport 9080 -j REDIRECT --to-ports 17006"],
        "apps": [{"port": 18081, "name": "v1"}, {"port": 18082, "name": "v2"}],
        "envoys": envoys,
    }
    (sockdir / "spec.json").write_text(json.dumps(spec))
    drv = Driver(procs.start("netns", ["unshare", "--net", sys.executable,
                                       str(Path(__file__).with_name("netns_driver.py")),
                                       str(sockdir / "spec.json")], pipes=True))

    def wait_all(version: int) -> None:
        nodes = list(admins)
        wait_for(lambda: programmed(status(api), version, nodes)
                 and all(a.warming() == 0 for a in admins.values()), 20,
                 f"programmed {version}: {pending(status(api), version, nodes)}")

    wait_all(v)
    out = drv.get("http://198.19.0.11/", n=10)
    assert [r.get("body", {}).get("name") for r in out] == ["v1"] * 10, out
    assert f"URI={spiffe_id('bookinfo', 'client')}" in out[0]["body"]["xfcc"]

    v = put(api, "/policy", Policy(mtls=(MTLSMode("STRICT"),), splits=(split(0, 100),)).to_dict())
    wait_all(v)
    # The first request after "programmed" already follows the new split.
    out = drv.get("http://198.19.0.11/", n=10)
    assert [r.get("body", {}).get("name") for r in out] == ["v2"] * 10, out

    # STRICT: a plaintext caller reaching the reviews pod directly is refused ...
    direct = drv.get("http://127.0.0.2:9080/")[0]
    assert "error" in direct, direct
    # ... while the meshed caller in the same window succeeds.
    assert drv.get("http://198.19.0.12/")[0]["body"]["name"] == "v1"
