"""Injecting and undoing faults, each written to the ledger first (``ledger.record``).

One process-wide attachment to the running lab (``registry.attach_target``)
and one mesh adapter (``registry.adapter_for``), so ``chaos run`` in a fresh
process drives the lab that ``meshproof up --mesh reference`` (or the pytest
runner) started. The toxiproxy placement (a toxiproxy process inside the
upstream pod, and a nat redirect in that pod that sends the sidecar's
connections to the app through it) needs the local lab's netns; the other
faults go through the Target and MeshAdapter interfaces only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from meshproof import registry
from meshproof.chaos import ledger
from meshproof.errors import MeshproofError
from meshproof.targets.model import APP_PORT, Pod
from meshproof.targets.local.netns import pod_netns

#: Where the toxiproxy in a pod listens (inside the pod netns) for the redirected
#: sidecar -> app connections, and its API (inside the pod netns as well).
TOX_PORT = 19080
TOX_API_PORT = 18474
TOX_PROXY = "app"
EVENTS_ENV = "MESHPROOF_CHAOS_EVENTS"

_lock = threading.RLock()
_target: Any = None
_adapter: Any = None


def target() -> Any:
    global _target
    with _lock:
        if _target is None:
            _target = registry.attach_target(os.environ.get("MESHPROOF_TARGET", "local"))
        return _target


def adapter() -> Any:
    global _adapter
    with _lock:
        if _adapter is None:
            mesh = registry.mesh_entry(os.environ.get("MESHPROOF_MESH", "reference"))
            _adapter = registry.adapter_for(mesh, target())
        return _adapter


def reset_cache() -> None:
    """Forget the attached lab (and what was put into its pods): a new lab is next."""
    global _target, _adapter
    from meshproof.chaos import probes

    with _lock:
        _target = _adapter = None
        probes._creds.clear()


def pod(ref: str) -> Pod:
    """``ns/workload``, ``ns/workload#ordinal`` or ``ns/workload#last`` (the highest
    ordinal: a pod an experiment scaled up, whatever ordinals earlier scalings used)
    -> the pod (experiments never use a target's own pod names)."""
    ns, _, rest = ref.partition("/")
    workload, _, ordinal = rest.partition("#")
    if ordinal == "last":
        pods = target().workload_pods(ns, workload)
        if not pods:
            target().pod(ns, workload)  # raises UnknownName with the list
        return pods[-1]  # type: ignore[no-any-return]
    return target().pod(ns, workload, int(ordinal or 0))  # type: ignore[no-any-return]


def require(capability: str, what: str) -> None:
    """Refuse a fault the target does not offer, naming why (the kube target offers
    ``components`` only with MESHPROOF_ALLOW_COMPONENT_OUTAGE=1 /
    ``meshproof chaos --allow-component-outage``)."""
    t = target()
    if not t.supports(capability):
        why = getattr(t, "missing", {}).get(capability, "")
        raise MeshproofError(f"{what}: target {t.name!r} does not offer {capability!r}"
                             + (f" ({why})" if why else ""),
                             "on a cluster, components are taken down only with the opt-in "
                             "flag --allow-component-outage")


def event(kind: str, **fields: Any) -> None:
    """Append to the run's event log (the runner's time series and fault window)."""
    path = Path(os.environ.get(EVENTS_ENV) or ledger.LEDGER_DIR / "events.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, open(path, "a") as f:
        f.write(json.dumps({"t": time.time(), "kind": kind, **fields}) + "\n")


def events() -> list[dict[str, Any]]:
    path = Path(os.environ.get(EVENTS_ENV) or ledger.LEDGER_DIR / "events.jsonl")
    try:
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    except OSError:
        return []


def errors_since_first_fault(url: str) -> int:
    """Requests to ``url`` that did not answer 200, over every probe batch that started
    after the run's first injected fault (the journal's time series)."""
    evs = events()
    first = min((e["t"] for e in evs if e["kind"] == "inject"), default=None)
    if first is None:
        return 0
    return sum(int(e["n"]) - int(e["ok"]) for e in evs
               if e["kind"] == "sample" and e.get("url") == url and e["t0"] >= first)


# ---------------------------------------------------------------- toxiproxy in a pod


def _netns(p: Pod) -> str:
    return pod_netns(p.namespace, p.name)  # the local lab's naming (LocalTarget only)


def _nat_rule(p: Pod) -> list[str]:
    return ["OUTPUT", "-p", "tcp", "-d", "127.0.0.1/32", "--dport", str(APP_PORT),
            "-m", "owner", "--uid-owner", str(p.proxy_uid),
            "-j", "REDIRECT", "--to-ports", str(TOX_PORT)]


def _ipt(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, "iptables", "-w", "5", "-t", "nat",
                           *args], capture_output=True, text=True, timeout=15, check=check)


def _tox_api(p: Pod, method: str, path: str, body: Any = None, timeout: float = 5.0) -> Any:
    """One HTTP/1.1 call to the toxiproxy API inside the pod netns (a socket made there)."""
    from meshproof.netns_socket import socket_in_netns

    data = json.dumps(body).encode() if body is not None else b""
    req = (f"{method} {path} HTTP/1.1\r\nHost: toxiproxy\r\nConnection: close\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    with socket_in_netns(f"/run/netns/{_netns(p)}") as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", TOX_API_PORT))
        s.sendall(req + data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head else 0
    if status >= 400 or status == 0:
        raise MeshproofError(f"toxiproxy in {p.key} answered {status}: {rest[:200]!r}")
    try:
        return json.loads(rest) if rest.strip() else None
    except ValueError:
        return rest.decode(errors="replace")


def insert_toxiproxy(upstream: str) -> None:
    """Put a toxiproxy between ``upstream``'s sidecar and its app (no toxics yet): the
    sidecar's new connections to the app port are redirected through it, and its pooled
    ones are closed (they would bypass the toxics)."""
    p = pod(upstream)
    if ledger.find("toxiproxy", pod=p.key):
        return
    ns = _netns(p)
    cfg = ledger.LEDGER_DIR / f"tox-{p.namespace}-{p.name}.json"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps([{"name": TOX_PROXY, "listen": f"127.0.0.1:{TOX_PORT}",
                                "upstream": f"127.0.0.1:{APP_PORT}", "enabled": True}]))
    ledger.record("toxiproxy", pod=p.key, ref=upstream)
    event("inject", what="toxiproxy", pod=p.key)
    target().start_process(p.key, "toxiproxy", [
        sys.executable, "-m", "meshproof.toxiproxy", "-host", "127.0.0.1",
        "-port", str(TOX_API_PORT), "-config", str(cfg), "-seed", "1"])
    deadline = time.monotonic() + 10
    while True:
        try:
            if TOX_PROXY in (_tox_api(p, "GET", "/proxies", timeout=1) or {}):
                break
        except (OSError, MeshproofError):
            pass
        if time.monotonic() > deadline:
            raise MeshproofError(f"toxiproxy in {p.key} did not come up within 10 s")
        time.sleep(0.05)
    _ipt(ns, "-I", *_nat_rule(p)[:1], "1", *_nat_rule(p)[1:])
    _kill_pooled(ns)


def _kill_pooled(ns: str) -> None:
    """Close established sidecar <-> app connections (both ends) so the next ones take
    the path as it is now (toxiproxy in or out)."""
    for flt in (f"dport = :{APP_PORT}", f"sport = :{APP_PORT}"):
        subprocess.run(["ip", "netns", "exec", ns, "ss", "-K", "-t", "state", "established",
                        "dst", "127.0.0.1", flt], capture_output=True, timeout=15, check=False)


def remove_toxiproxy(upstream: str = "", *, pod_key: str = "") -> None:
    """Heal: toxics off and the redirect gone (new connections go straight to the app).
    The toxiproxy process stays, transparent, for the sidecar's pooled connections
    through it (stopping it would reset requests in flight on them: 503s that are the
    harness's, not the mesh's); the ledger's undo (the rollback) stops it."""
    key = pod_key or pod(upstream).key
    p = next((x for x in target().pods() if x.key == key), None)
    if p is not None and ledger.find("toxiproxy", pod=key):
        _heal(p)
        event("remove", what="toxiproxy", pod=key)


def _heal(p: Pod) -> None:
    ns = _netns(p)
    try:  # toxics off first: what is held is released
        for tx in _tox_api(p, "GET", f"/proxies/{TOX_PROXY}/toxics", timeout=2) or []:
            _tox_api(p, "DELETE", f"/proxies/{TOX_PROXY}/toxics/{tx['name']}", timeout=2)
    except (OSError, MeshproofError):
        pass  # the toxiproxy is gone already (a killed run's): the rule is what matters
    for _ in range(5):  # every copy of the rule (bounded)
        if _ipt(ns, "-D", *_nat_rule(p), check=False).returncode != 0:
            break


def _undo_toxiproxy(key: str) -> None:
    t = target()
    p = next((x for x in t.pods() if x.key == key), None)
    if p is None:
        return  # the pod is gone, and its netns with it
    _heal(p)
    time.sleep(0.3)  # requests in flight through the proxy finish
    t.stop_process(key, "toxiproxy")


def add_toxic(upstream: str, type: str, attributes: dict[str, Any], name: str = "",
              stream: str = "downstream", toxicity: float = 1.0) -> dict[str, Any]:
    p = pod(upstream)
    if not ledger.find("toxiproxy", pod=p.key):
        insert_toxiproxy(upstream)
    toxic = {"name": name or f"{type}_{stream}", "type": type, "stream": stream,
             "toxicity": toxicity, "attributes": attributes}
    event("inject", what="toxic", pod=p.key, toxic=toxic)
    made = _tox_api(p, "POST", f"/proxies/{TOX_PROXY}/toxics", toxic)
    _kill_pooled(_netns(p))
    return made if isinstance(made, dict) else toxic


def remove_toxic(upstream: str, name: str) -> None:
    p = pod(upstream)
    if not ledger.find("toxiproxy", pod=p.key):
        return
    try:
        _tox_api(p, "DELETE", f"/proxies/{TOX_PROXY}/toxics/{name}")
    except MeshproofError as exc:
        if "404" not in str(exc):
            raise
    event("remove", what="toxic", pod=p.key, toxic=name)


# ---------------------------------------------------------------- target-level faults


def stop_component(name: str) -> None:
    require("components", f"stopping {name}")
    try:
        adapter()  # attach the mesh first: it reads the policy in force from the control plane
    except MeshproofError:
        pass
    ledger.record("component", name=name)
    event("inject", what="stop", component=name)
    target().stop_component(name)


def start_component(name: str) -> None:
    target().start_component(name)
    for e in ledger.find("component", name=name):
        ledger.clear(e["id"])
    event("remove", what="stop", component=name)


def block(a: str, b: str) -> None:
    require("block", f"partitioning {a} from {b}")
    pa, pb = pod(a), pod(b)
    ledger.record("block", a=pa.key, b=pb.key)
    event("inject", what="block", a=pa.key, b=pb.key)
    target().block(pa, pb)


def unblock(a: str, b: str) -> None:
    pa, pb = pod(a), pod(b)
    target().unblock(pa, pb)
    for e in ledger.find("block", a=pa.key, b=pb.key):
        ledger.clear(e["id"])
    event("remove", what="block", a=pa.key, b=pb.key)


def kill_pod(ref: str) -> None:
    require("kill-pod", f"killing {ref}")
    p = pod(ref)
    ledger.record("pod", key=p.key, ref=ref)
    event("inject", what="kill-pod", pod=p.key)
    target().kill_pod(p)


def revive_pod(ref: str) -> None:
    p = pod(ref)
    for e in ledger.find("pod", key=p.key):
        target().revive_pod(p)
        ledger.clear(e["id"])
    event("remove", what="kill-pod", pod=p.key)


def scale(workload: str, replicas: int) -> list[Pod]:
    """Scale ``ns/workload`` to ``replicas``; the ledger keeps the count it had, so the
    rollback (or the next run, after a kill) scales it back."""
    ns, _, name = workload.partition("/")
    t = target()
    before = len([p for p in t.workload_pods(ns, name) if p.ready])
    if not ledger.find("scale", namespace=ns, workload=name):
        ledger.record("scale", namespace=ns, workload=name, replicas=before)
    event("inject", what="scale", workload=workload, replicas=int(replicas), was=before)
    return t.scale(ns, name, int(replicas))  # type: ignore[no-any-return]


def unscale(workload: str) -> None:
    """Back to the replica count the ledger kept (a no-op when nothing was scaled)."""
    ns, _, name = workload.partition("/")
    for e in ledger.find("scale", namespace=ns, workload=name):
        _scale_to(ns, name, int(e["args"]["replicas"]))
        ledger.clear(e["id"])
        event("remove", what="scale", workload=workload)


def _scale_to(namespace: str, workload: str, replicas: int) -> None:
    target().scale(namespace, workload, replicas)


_ttl: Any = None  # the open short_cert_ttl context of this process, if any


def short_cert_ttl(ttl_s: int) -> None:
    """The mesh issues workload certificates valid ``ttl_s`` seconds (its
    ``short_cert_ttl`` capability) until ``restore_cert_ttl`` or the ledger's undo; a
    killed run's setting is undone by the next adapter (its owner pid is gone)."""
    global _ttl
    ad = adapter()
    if not ad.supports("short-cert-ttl"):
        raise MeshproofError(f"mesh {ad.name!r} cannot shorten its certificate TTL",
                             "the CA-outage experiment needs the short-cert-ttl capability")
    restore_cert_ttl()
    ledger.record("cert-ttl", ttl_s=int(ttl_s))
    event("inject", what="cert-ttl", ttl_s=int(ttl_s))
    ctx = ad.short_cert_ttl(int(ttl_s))
    ctx.__enter__()
    _ttl = ctx


def restore_cert_ttl() -> None:
    """The mesh's default certificate TTL back (a no-op when none was shortened here)."""
    global _ttl
    ctx, _ttl = _ttl, None
    if ctx is not None:
        ctx.__exit__(None, None, None)
        event("remove", what="cert-ttl")
    for e in ledger.find("cert-ttl"):
        ledger.clear(e["id"])


def apply_policy(policy: str) -> Any:
    """Apply a policy YAML text (meshproof kinds, SMI, GAMMA) as one change; returns the
    token. Recorded so a killed run's policy is removed by the next run."""
    from meshproof.policy import load_text
    from meshproof.policy.registry import registry_of

    intents = load_text(policy, "<experiment>", registry=registry_of(target()))
    ledger.record("intent", policy=policy)
    event("inject", what="intent", intents=[i.to_dict() for i in intents])
    return adapter().apply_all(intents)


def remove_policy(policy: str) -> Any:
    from meshproof.policy import load_text
    from meshproof.policy.registry import registry_of

    token = None
    intents = load_text(policy, "<experiment>", registry=registry_of(target()))
    for intent in intents:
        token = adapter().remove(intent)
    for e in ledger.find("intent", policy=policy):
        ledger.clear(e["id"])
    event("remove", what="intent")
    return token


# ---------------------------------------------------------------- the ledger's undo


def undo(entry: dict[str, Any]) -> None:
    """Undo one ledger entry on the running lab (a no-op when no lab runs)."""
    from meshproof.targets.local.client import LocalTarget

    if not LocalTarget.running():
        return
    kind, a = entry["kind"], entry["args"]
    t = target()
    if kind == "toxiproxy":
        _undo_toxiproxy(a["pod"])
    elif kind == "component":
        _undo_component(t, a["name"])
    elif kind == "block":
        pods = {p.key: p for p in t.pods()}
        if a["a"] in pods and a["b"] in pods:
            t.unblock(pods[a["a"]], pods[a["b"]])
    elif kind == "pod":
        # Revived whether or not it looks ready: a killed runner's kill may still be in
        # progress in the lab (its readiness not yet recomputed), as with components.
        p = next((x for x in t.pods() if x.key == a["key"]), None)
        if p is not None:
            t.revive_pod(p)
    elif kind == "cert-ttl":
        if _ttl is not None:
            restore_cert_ttl()
        else:  # a killed run's: the adapter undoes a setting whose owner is gone
            getattr(adapter(), "undo_stale_cert_ttl", lambda: None)()
    elif kind == "scale":
        _scale_to(a["namespace"], a["workload"], int(a["replicas"]))
    elif kind == "intent":
        from meshproof.policy import load_text

        ad = adapter()
        token = None
        for intent in load_text(a["policy"], "<ledger>"):
            token = ad.remove(intent)
        if token is not None:
            ad.wait_programmed(token, 20)
    else:
        raise MeshproofError(f"unknown ledger entry kind {kind!r}")


def _undo_component(t: Any, name: str) -> None:
    """Start ``name`` whether or not it looks up now, then check it stays up.

    A runner killed right after asking the lab to stop a component leaves that stop
    running inside the lab (SIGTERM, then up to 3 s for the process to exit): in that
    window ``components()`` still says "up", so a look-then-start skipped the start
    and the component went down for good a moment later (the control plane after a
    SIGKILLed controlplane-outage run: every sidecar restarted next waited forever
    for its first config). ``start_component`` is a restart, so it is safe either
    way; the bounded re-check covers a stop that lands after it.
    """
    for _ in range(3):
        t.start_component(name)
        time.sleep(0.3)
        if t.components().get(name, True):
            break
    if name == "controlplane":  # converge, as the experiment's method would
        ad = adapter()
        ad.wait_programmed(ad.apply_all([]), 20)
