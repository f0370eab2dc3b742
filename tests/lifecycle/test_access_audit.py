"""Who may read or connect to what the lab makes: an audit, tried from other pods' uids.

Every file, dir and socket the lab with the reference mesh creates (the run
dir, /etc/netns/mp-*, the machine lock) must match a row of ``ACCESS``,
which says who may read it (a dir: list it; a socket: connect to it) and
why. Each one is then tried from another pod's app uid and proxy uid (and,
for a pod's own things, from that pod's app and proxy uid): what the kernel
allows must be exactly what the row says. A path no row covers fails the
test: add a row, with its reason, before the lab ships it.

The ADS socket is world-connectable on purpose (every sidecar has its own
uid), so connecting proves nothing: the control plane must refuse a claim
of another node, from an app uid and from another pod's proxy uid, while
the real sidecar keeps being served.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meshproof import paths
from meshproof.targets.local import lock, netns
from meshproof.targets.local.client import LocalTarget, stop_lab
from meshproof.targets.local.lab import APP_UID_BASE, PROXY_UID_BASE
from tests.conftest import needs_root

pytestmark = [pytest.mark.lab, needs_root]

ROOT = Path(__file__).resolve().parents[2]
ADS_CLIENT = ROOT / "tests" / "refmesh" / "ads_client.py"
VICTIM, OTHER = "team-b/echo-0", "team-a/echo-0"

_RUN = re.escape(str(paths.RUN_DIR))  # the run dir of this lab (MESHPROOF_INSTANCE aware)

#: (path pattern, who may read/connect, why). ``P`` stands for a pod dir
#: (pods/NS/NAME); who: "all", "root" (root only), "proxy" / "app" (the pod's
#: own proxy / app uid, and root).
ACCESS: list[tuple[str, str, str]] = [
    (re.escape(str(lock.LOCK_PATH)), "all", "pid and phase of the lab holding the machine"),
    (r"/etc/netns", "all", "ip netns exec's per-netns /etc"),
    (r"/etc/netns/" + re.escape(netns.PREFIX) + r"[^/]+(/hosts)?", "all",
     "service names, like kube DNS: no secret"),
    (_RUN, "all", "run dir: traversed by every pod uid"),
    (_RUN + r"/bin(/workload\.py|/probe\.py)?", "all", "staged stdlib app and probe"),
    (_RUN + r"/bin/pylib(/(h2|hpack|hyperframe)(/[a-z_]+\.py)?|/grpcwire\.py)?", "all",
     "pure-Python HTTP/2 libraries and the gRPC wire module the app and probe import "
     "(public code, no secret)"),
    (_RUN + r"/lab\.json", "all", "pods, IPs, services: discovery data, no secret"),
    (_RUN + r"/labd\.pid", "all", "the daemon's pid"),
    (_RUN + r"/labd\.log", "all", "operational log, no secret"),
    (_RUN + r"/labd\.sock", "root", "the target API drives the whole lab"),
    (_RUN + r"/mesh", "all", "traversed by sidecars to reach ads.sock"),
    (_RUN + r"/mesh/ads\.sock", "all",
     "every sidecar connects as its own uid; each stream is authenticated by SO_PEERCRED"),
    (_RUN + r"/mesh/ca\.sock", "root", "the node agent (root) asks for SVIDs with pod tokens"),
    (_RUN + r"/mesh/agent\.sock", "root",
     "the node agent's control API: which pod's socket serves which identity"),
    (_RUN + r"/mesh/ca", "root", "the CA's state"),
    (_RUN + r"/mesh/ca/root-key\.pem", "root", "the mesh's root key"),
    (_RUN + r"/mesh/ca/root-cert\.pem", "root", "behind the 0700 CA dir"),
    (_RUN + r"/mesh/cp", "root", "the control plane's state: every node's config"),
    (_RUN + r"/mesh/cp/state\.json", "root", "every node's config in one file"),
    (_RUN + r"/mesh/cp-api\.sock", "root", "the control API programs the mesh"),
    (_RUN + r"/mesh/tokens\.json", "root", "bootstrap token -> identity book"),
    (_RUN + r"/mesh/(ca|controlplane|agent)\.log", "all", "operational log, no secret"),
    (_RUN + r"/pods(/[^/]+)?", "all", "pod dirs are traversed by their uids"),
    (r"P", "all", "traversed by the pod's uids"),
    (r"P/token", "root", "the pod's bootstrap token: whoever reads it gets its SVID"),
    (r"P/(app|probe-[AX]|proc-[^/]+)\.log", "all", "operational log, no secret"),
    (r"P/app", "all", "the app's own dir (0755): holds its readiness marker"),
    (r"P/app/ready", "all", "the app's pid: a readiness marker"),
    (r"P/probe-A", "all", "the probe agent's dir for the app uid"),
    (r"P/probe-A/probe\.ready", "all", "readiness marker"),
    (r"P/probe-A/probe\.sock", "app", "probe orders, sent as the pod's app uid"),
    (r"P/probe-X", "all", "the probe agent's dir for the proxy uid"),
    (r"P/probe-X/probe\.ready", "all", "readiness marker"),
    (r"P/probe-X/probe\.sock", "proxy", "probe orders, sent as the pod's proxy uid"),
    (r"P/files", "app", "files put for the app (client certs)"),
    (r"P/files/[^/]+", "app", "files put for the app (client certs)"),
    (r"P/sidecar", "all", "traversed by the proxy uid (owner) and root"),
    (r"P/sidecar/envoy\.json", "all", "bootstrap: node id and socket paths, no secret"),
    (r"P/sidecar/envoy\.log", "all", "operational log, no secret"),
    (r"P/sidecar/admin\.sock", "proxy", "Envoy admin: config dump, quitquitquit"),
    (r"P/sidecar/sds\.sock", "proxy", "SDS: the pod's private key"),
    (r"P/sidecar/keys", "proxy", "the pod's key dir"),
    (r"P/sidecar/keys/(key|cert|root)\.pem|P/sidecar/keys/svid\.json", "proxy",
     "the pod's SVID and key"),
]


@dataclass(frozen=True)
class Entry:
    path: str
    kind: str  # file | dir | sock
    who: str
    pod: str  # the pod it belongs to ("" for the lab's own things)


@dataclass(frozen=True)
class Uids:
    app: int
    proxy: int


def uids(pod: Any) -> Uids:
    index = pod.proxy_uid - PROXY_UID_BASE
    return Uids(APP_UID_BASE + index, pod.proxy_uid)


@pytest.fixture(scope="module")
def lab() -> Iterator[LocalTarget]:
    lock.wait_free(900)  # another package's (or engineer's) lab: queue behind it
    target = LocalTarget.start(mesh="reference")
    try:
        yield target
    finally:
        stop_lab()


def inventory(pods: dict[str, Any]) -> list[Entry]:
    """Every path the lab made, matched to its ACCESS row (unmatched: who="?")."""
    roots = [paths.RUN_DIR, netns.NETNS_ETC, lock.LOCK_PATH]
    found: list[Path] = []
    for r in roots:
        if r == netns.NETNS_ETC:
            found += [r, *[p for d in r.glob(f"{netns.PREFIX}*") for p in (d, *d.rglob("*"))]]
        elif r.is_dir():
            found += [r, *r.rglob("*")]
        elif r.exists():
            found.append(r)
    out = []
    for p in found:
        st = p.lstat()
        kind = "sock" if stat.S_ISSOCK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) \
            else "file"
        text, pod = str(p), ""
        m = re.match(rf"{re.escape(str(paths.RUN_DIR))}/pods/([^/]+)/([^/]+)(/.*)?$", text)
        if m:
            pod = f"{m.group(1)}/{m.group(2)}"
            rest = m.group(3) or ""
            u = uids(pods[pod])
            rest = rest.replace(f"/probe-{u.app}", "/probe-A").replace(f"/probe-{u.proxy}",
                                                                       "/probe-X")
            text = "P" + rest
        who = next((w for pat, w, _ in ACCESS if re.fullmatch(pat, text)), "?")
        out.append(Entry(str(p), kind, who, pod))
    return out


TRY = r"""
import json, os, socket, sys
out = {}
for path, kind in json.load(sys.stdin):
    try:
        if kind == "sock":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(path)
        elif kind == "dir":
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
        out[path] = True
    except PermissionError:
        out[path] = False
    except OSError as e:
        out[path] = "error: %s" % e
print(json.dumps(out))
"""


def try_as(uid: int, entries: list[Entry]) -> dict[str, bool | str]:
    """What ``uid`` may open: each entry read (file), listed (dir) or connected (socket)."""
    cp = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                         paths.POD_PYTHON, "-c", TRY],
                        input=json.dumps([(e.path, e.kind) for e in entries]),
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)  # type: ignore[no-any-return]


def expected(entry: Entry, tried_by: str, same_pod: bool) -> bool:
    """May ``tried_by`` ("app" / "proxy") of the entry's own pod (or another) open it?"""
    if entry.who == "all":
        return True
    return same_pod and entry.who == tried_by


def test_every_path_the_lab_makes_is_listed_and_refuses_the_wrong_uids(
        lab: LocalTarget) -> None:
    pods = {p.key: p for p in lab.pods()}
    for key in (VICTIM, OTHER):  # probe agents as both uids: their sockets exist too
        lab.probe_raw(key.replace("echo", "client"), {"url": "http://echo.team-b/echo",
                                                      "count": 1})
        lab.probe_raw(key, {"url": "http://echo.team-b/echo", "count": 1}, in_sidecar=True)
    entries = inventory(pods)
    unlisted = sorted(e.path for e in entries if e.who == "?")
    assert not unlisted, f"paths with no ACCESS row (say who may read them, and why): {unlisted}"

    mismatches: list[str] = []
    table: dict[tuple[str, str], int] = {}
    for owner_key in sorted({e.pod for e in entries} | {""}):
        mine = [e for e in entries if e.pod == owner_key]
        if not mine:
            continue
        other = pods[OTHER if owner_key != OTHER else VICTIM]
        tries = [("app", uids(other).app, False), ("proxy", uids(other).proxy, False)]
        if owner_key:
            tries += [("app", uids(pods[owner_key]).app, True),
                      ("proxy", uids(pods[owner_key]).proxy, True)]
        for tried_by, uid, same in tries:
            got = try_as(uid, mine)
            for e in mine:
                want = expected(e, tried_by, same)
                if got[e.path] != want:
                    mismatches.append(f"{e.path} ({e.who}) as {'own' if same else 'other'} "
                                      f"{tried_by} uid {uid}: got {got[e.path]}, want {want}")
                table[(e.who, e.kind)] = table.get((e.who, e.kind), 0) + 1
    print("\naccess audit (who may read, kind): tries", dict(sorted(table.items())),
          f"over {len(entries)} paths")
    assert not mismatches, "\n".join(mismatches)


def claim(uid: int, node: str, *flags: str) -> dict[str, Any]:
    cp = subprocess.run([sys.executable, str(ADS_CLIENT), str(paths.RUN_DIR / "mesh" / "ads.sock"),
                         node, "--as-uid", str(uid), *flags],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def cp_api(method: str, path: str, body: Any = None) -> Any:
    from refmesh import unixhttp

    status, answer = unixhttp.request_json(paths.RUN_DIR / "mesh" / "cp-api.sock", method,
                                           path, body, timeout=10)
    assert status == 200, answer
    return answer


def programmed_everywhere(version: int, nodes: list[str], timeout: float = 30) -> None:
    from refmesh.controlplane import pending

    deadline = time.monotonic() + timeout
    while waiting := pending(cp_api("GET", "/status"), version, nodes):
        assert time.monotonic() < deadline, f"not programmed at {version}: {waiting}"
        time.sleep(0.05)


def test_no_impersonation_on_the_ads_socket_and_the_real_sidecar_still_served(
        lab: LocalTarget) -> None:
    pods = {p.key: p for p in lab.pods()}
    meshed = sorted(k for k, p in pods.items() if p.meshed)
    victim_before = cp_api("GET", "/status")["nodes"][VICTIM]
    real = uids(pods[VICTIM])
    for who, uid in (("the victim's own app uid", real.app),
                     ("another pod's app uid", uids(pods[OTHER]).app),
                     ("another pod's proxy uid", uids(pods[OTHER]).proxy)):
        for flags in ((), ("--nack",)):
            out = claim(uid, VICTIM, *flags)
            assert out["code"] == "PERMISSION_DENIED" and out["resources"] == 0, (who, out)
            assert f"only its proxy uid {real.proxy} may" in out["details"], (who, out)
    status = cp_api("GET", "/status")
    assert status["nodes"][VICTIM] == victim_before, "an impostor touched the victim's status"
    refused = [r for r in status["refused"] if r["node"] == VICTIM]
    assert {r["uid"] for r in refused} == {real.app, uids(pods[OTHER]).app,
                                           uids(pods[OTHER]).proxy}
    log = (paths.RUN_DIR / "mesh" / "controlplane.log").read_text()
    assert f"refused ADS stream claiming {VICTIM}: uid {real.app} " in log

    # The real sidecar is still served: a new version reaches every sidecar (the victim
    # too) and traffic through it works; then the old policy comes back.
    policy = cp_api("GET", "/state")["policy"]
    strict = {**policy, "mtls": [*policy.get("mtls", []),
                                 {"mode": "STRICT", "namespace": "team-b", "workload": ""}]}
    programmed_everywhere(cp_api("PUT", "/policy", strict)["version"], meshed)
    try:
        res = lab.probe_raw("team-a/client-0", {"url": "http://echo.team-b/echo", "count": 5})
        assert [r["status"] for r in res["results"]] == [200] * 5, res
    finally:
        programmed_everywhere(cp_api("PUT", "/policy", policy)["version"], meshed)
