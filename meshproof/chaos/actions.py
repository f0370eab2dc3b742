"""Chaos Toolkit actions of meshproof (``provider: {type: python, module: meshproof.chaos.actions}``).

Every fault is written to the fault ledger before it is injected
(``meshproof.chaos.ledger``), so a killed runner's faults are undone by the
next run and by ``meshproof down``. Names of pods are ``ns/workload[#ordinal]``.
No ``from __future__ import annotations``: Chaos Toolkit's discovery reads
annotations as types.
"""

import time
from typing import Any, Dict

from meshproof.chaos import faults, ledger
from meshproof.errors import MeshproofError

__all__ = ["insert_toxiproxy", "remove_toxiproxy", "add_toxic", "remove_toxic",
           "stop_sidecar", "start_sidecar", "stop_component", "start_component",
           "block", "unblock", "kill_pod", "revive_pod", "apply_policy", "remove_policy",
           "apply_policy_expect_not_programmed", "converge", "wait_serving", "undo_ledger",
           "pause", "expect_status", "scale_workload", "unscale_workload", "stop_app",
           "start_app", "expect_errors_at_most", "short_cert_ttl", "restore_cert_ttl",
           "stop_ca", "start_ca", "expect_no_new_certificate", "expect_expired_cert_refused",
           "renew_certs_now", "wait_since_injected"]


def insert_toxiproxy(upstream: str) -> None:
    """A toxiproxy between pod ``upstream``'s sidecar and its app (no toxics)."""
    faults.insert_toxiproxy(upstream)


def remove_toxiproxy(upstream: str) -> None:
    faults.remove_toxiproxy(upstream)


def add_toxic(upstream: str, type: str, attributes: Dict[str, Any] = None,
              name: str = "", stream: str = "downstream", toxicity: float = 1.0) -> Dict[str, Any]:
    """A toxiproxy v2 toxic (latency, timeout, reset_peer, bandwidth, ...) on the link
    from ``upstream``'s sidecar to its app (inserting the toxiproxy when needed)."""
    return faults.add_toxic(upstream, type, dict(attributes or {}), name, stream, toxicity)


def remove_toxic(upstream: str, name: str) -> None:
    faults.remove_toxic(upstream, name)


def _sidecar(pod: str) -> str:
    return f"{faults.pod(pod).key}/sidecar"


def stop_sidecar(pod: str) -> None:
    """Stop pod ``pod``'s sidecar (the supervisor does not restart it)."""
    faults.stop_component(_sidecar(pod))


def start_sidecar(pod: str) -> None:
    """Start it again and wait until it is ready."""
    faults.start_component(_sidecar(pod))


def stop_component(name: str) -> None:
    """Stop a named mesh component (``controlplane``, ``ca``, ``NS/POD/sidecar``)."""
    faults.stop_component(name)


def start_component(name: str) -> None:
    faults.start_component(name)


def block(a: str, b: str) -> None:
    """Drop all traffic between two pods."""
    faults.block(a, b)


def unblock(a: str, b: str) -> None:
    faults.unblock(a, b)


def kill_pod(pod: str) -> None:
    """SIGKILL every process of a pod (``ns/workload#last``: the newest one)."""
    faults.kill_pod(pod)


def revive_pod(pod: str) -> None:
    faults.revive_pod(pod)


def apply_policy(policy: str, timeout_s: float = 15.0) -> float:
    """Apply a policy (YAML text: meshproof kinds, SMI, GAMMA) and wait until programmed;
    returns the seconds it took."""
    ad = faults.adapter()
    return float(ad.wait_programmed(faults.apply_policy(policy), float(timeout_s)))


def remove_policy(policy: str, timeout_s: float = 15.0) -> None:
    token = faults.remove_policy(policy)
    if token is not None:
        faults.adapter().wait_programmed(token, float(timeout_s))


def apply_policy_expect_not_programmed(policy: str, timeout_s: float = 3.0) -> Dict[str, Any]:
    """During a control-plane outage: apply ``policy`` and require that the mesh says,
    within ``timeout_s`` (plus 1 s), that it is not programmed. Fails if it claims to
    be programmed or takes longer to say."""
    from meshproof.mesh.base import NotProgrammed

    t0 = time.monotonic()
    try:
        token = faults.apply_policy(policy)
        faults.adapter().wait_programmed(token, float(timeout_s))
    except (NotProgrammed, MeshproofError) as exc:
        took = time.monotonic() - t0
        if took > float(timeout_s) + 1.0:
            raise MeshproofError(f"'not programmed' took {took:.1f} s (> {timeout_s} s + 1 s)")
        faults.event("note", what="not-programmed", seconds=took, message=str(exc))
        return {"not_programmed": True, "seconds": round(took, 3), "message": str(exc)}
    raise MeshproofError("the mesh said an intent was programmed during a control-plane "
                         "outage")


def converge(timeout_s: float = 20.0) -> float:
    """Push the adapter's whole policy (what was asked, including anything asked during
    an outage) and wait until every sidecar has it."""
    ad = faults.adapter()
    return float(ad.wait_programmed(ad.apply_all([]), float(timeout_s)))


def wait_serving(src: str, url: str, timeout_s: float = 20.0, consecutive: int = 5) -> float:
    """Recovery: within ``timeout_s``, ``consecutive`` requests in a row from ``src`` to
    ``url`` answer 200. Returns the seconds it took; fails otherwise (bounded loop)."""
    from meshproof.probe import order

    t0 = time.monotonic()
    for _ in range(int(timeout_s / 0.2) + 1):
        rs = faults.target().probe(faults.pod(src), order(url, int(consecutive),
                                                           timeout_s=1.0, concurrency=1))
        if all(r.status == 200 for r in rs):
            took = time.monotonic() - t0
            faults.event("note", what="serving", src=src, url=url, seconds=took)
            return took
        if time.monotonic() - t0 > float(timeout_s):
            break
        time.sleep(0.2)
    raise MeshproofError(f"{url} from {src} did not serve again within {timeout_s} s")


def undo_ledger() -> list:
    """Undo every fault still in the ledger (a killed run's, or this run's)."""
    return ledger.undo_all()


def pause(seconds: float) -> None:
    """Wait (bounded) while the fault is in force: the continuous hypothesis samples."""
    time.sleep(min(float(seconds), 120.0))


def expect_status(src: str, url: str, status: int, count: int = 10,
                  body_bytes: int = 0) -> int:
    """Every one of ``count`` requests from ``src`` to ``url`` answers ``status`` (e.g. an
    intent asked for during an outage is in force after convergence, or a positive
    control: the fault is in force); fails otherwise. ``body_bytes``: POST that many."""
    from dataclasses import replace

    from meshproof.probe import order

    o = order(url, int(count), timeout_s=2.0)
    if body_bytes:
        o = replace(o, method="POST", body="x" * max(0, min(int(body_bytes), 1_000_000)))
    rs = faults.target().probe(faults.pod(src), o)
    seen = sorted({r.outcome for r in rs})
    if not rs or any(r.status != int(status) for r in rs):
        raise MeshproofError(f"{url} from {src}: expected {status} on all {count}, saw {seen}")
    return len(rs)


def scale_workload(workload: str, replicas: int) -> int:
    """Scale ``ns/workload`` (e.g. three replicas of one version); the rollback, or the
    next run after a killed one, scales it back. Returns the pods it has."""
    return len(faults.scale(workload, int(replicas)))


def unscale_workload(workload: str) -> None:
    faults.unscale(workload)


def _app(pod: str) -> str:
    return f"{faults.pod(pod).key}/app"


def stop_app(pod: str) -> None:
    """Stop a pod's app, not its sidecar: the pod stays in the load-balancing set (its
    readiness has not caught up yet) and its sidecar answers every request with 503."""
    faults.stop_component(_app(pod))


def start_app(pod: str) -> None:
    faults.start_component(_app(pod))


def expect_errors_at_most(url: str, max_errors: int) -> int:
    """Client-visible errors (not 200) of every hypothesis sample to ``url`` since the
    first fault was injected, summed over the run so far: at most ``max_errors`` (e.g.
    outlier detection's consecutive-error count). Returns the count; fails above it."""
    errors = faults.errors_since_first_fault(url)
    faults.event("note", what="errors-since-fault", url=url, errors=errors,
                 max_errors=int(max_errors))
    if errors > int(max_errors):
        raise MeshproofError(f"{errors} client-visible errors on {url} since the fault "
                             f"(bound {max_errors})")
    return errors



def short_cert_ttl(ttl_s: int) -> None:
    """Workload certificates valid ``ttl_s`` seconds (rotated at half life) until
    ``restore_cert_ttl`` (the rollback, or the next run after a killed one)."""
    faults.short_cert_ttl(int(ttl_s))


def restore_cert_ttl() -> None:
    faults.restore_cert_ttl()


def stop_ca() -> None:
    """Stop the mesh's CA (component ``ca``): no certificate is signed until it is back."""
    faults.stop_component("ca")


def start_ca() -> None:
    faults.start_component("ca")


def expect_no_new_certificate(workload: str) -> str:
    """A workload that would join now cannot get a certificate (the CA is out): the
    mesh's issue path (a CSR with the workload's bootstrap credential) is refused or
    unreachable. Fails if a certificate is issued."""
    p = faults.pod(workload)
    try:
        faults.adapter().issue_certificate(p, 60)
    except (MeshproofError, OSError) as exc:
        faults.event("note", what="no-new-certificate", workload=workload, error=str(exc))
        return str(exc)[:200]
    raise MeshproofError(f"a certificate for {p.identity} was issued while the CA was out")


def expect_expired_cert_refused(src: str, identity: str, dst: str, ttl_s: int = 2
                                ) -> Dict[str, Any]:
    """An expired mesh certificate is refused: a certificate the mesh issued for pod
    ``identity``'s workload, valid ``ttl_s`` seconds, is presented by ``src`` (an
    unmeshed pod, mTLS straight to ``dst``'s app port) once while valid (positive
    control: accepted) and once expired (plus 1.5 s for X.509's one-second resolution
    and skew): refused."""
    from meshproof.conformance.tls import put_tls_files, tls_probe

    t, s, d = faults.target(), faults.pod(src), faults.pod(dst)
    issued = faults.adapter().issue_certificate(faults.pod(identity), int(ttl_s))
    t_issued = time.monotonic()
    tls = put_tls_files(t, s, "chaos-expiring", issued.cert, issued.key, issued.root)
    valid = tls_probe(t, s, d, tls, count=2, timeout_s=2.0)
    time.sleep(max(0.0, t_issued + int(ttl_s) + 1.5 - time.monotonic()))
    expired = tls_probe(t, s, d, tls, count=2, timeout_s=2.0)
    seen = {"valid": sorted(r.outcome for r in valid),
            "expired": sorted(r.outcome for r in expired)}
    faults.event("note", what="expired-cert", **seen)
    if not valid or any(r.status != 200 for r in valid):
        raise MeshproofError(f"a valid mesh certificate was not accepted (positive control): "
                             f"{seen['valid']}")
    if any(r.status != 0 for r in expired):
        raise MeshproofError(f"an expired mesh certificate was accepted: {seen['expired']}")
    return seen


def renew_certs_now() -> int:
    """Every identity agent tries to renew its certificate at once (the reference mesh's
    installer signals them, as a TTL change does): during a CA outage each renewal fails
    at a known moment instead of at each certificate's half life. Returns how many were
    asked; 0 on a mesh without the operation (they then renew on their own schedule)."""
    t = faults.target()
    if not hasattr(t, "mesh_call"):
        return 0
    n = int(t.mesh_call("renew_certs") or 0)
    faults.event("note", what="renew-certs-now", agents=n)
    return n


def wait_since_injected(what: str, seconds: float) -> float:
    """Sleep until ``seconds`` after the run's first injection of ``what`` (e.g. until the
    certificates valid during an outage have expired); bounded to 120 s."""
    at = min((e["t"] for e in faults.events()
              if e["kind"] == "inject" and e.get("what") == what), default=None)
    if at is None:
        raise MeshproofError(f"nothing of kind {what!r} was injected in this run")
    left = max(0.0, min(at + float(seconds) - time.time(), 120.0))
    time.sleep(left)
    return left
