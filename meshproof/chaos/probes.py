"""Chaos Toolkit probes of meshproof (``provider: {type: python, module: meshproof.chaos.probes}``).

Each probe sends one bounded batch (count and time) from a pod through the
target interface and returns a number the experiment's tolerance judges; the
batch's samples go to the run's event log for the journal and the plot.
No ``from __future__ import annotations`` here: Chaos Toolkit's discovery
reads the annotations as types.
"""

import time
from dataclasses import replace
from typing import Any, Dict, List

from meshproof.chaos import faults
from meshproof.probe import order

__all__ = ["success_count", "bounded_count", "latency_quantile_ms", "sidecar_bypass_count",
           "programmed", "fresh_mtls_count"]


def _batch(src: str, url: str, count: int, timeout_s: float, concurrency: int,
           probe: str, body_bytes: int = 0) -> List[Any]:
    count = max(1, min(int(count), 2000))  # bounded
    t0 = time.time()
    o = order(url, count, timeout_s=float(timeout_s), concurrency=int(concurrency))
    if body_bytes:  # a POST of that many bytes (bounded: 1 MB)
        o = replace(o, method="POST", body="x" * max(0, min(int(body_bytes), 1_000_000)))
    results = faults.target().probe(faults.pod(src), o)
    lat = sorted(r.latency_us / 1000 for r in results)
    faults.event("sample", probe=probe, src=src, url=url, t0=t0, t1=time.time(),
                 body_bytes=int(body_bytes), n=len(results),
                 ok=sum(1 for r in results if r.status == 200),
                 outcomes=_outcomes(results),
                 p50_ms=_q(lat, 0.5), p99_ms=_q(lat, 0.99), max_ms=lat[-1] if lat else 0.0)
    return results


def _outcomes(results: List[Any]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for r in results:
        out[r.outcome] = out.get(r.outcome, 0) + 1
    return out


def _q(values: List[float], q: float) -> float:
    if not values:
        return 0.0
    return float(values[min(len(values) - 1, int(q * len(values)))])


def success_count(src: str, url: str, count: int = 88, timeout_s: float = 2.0,
                  concurrency: int = 8, statuses: List[int] = None,
                  body_bytes: int = 0) -> int:
    """How many of ``count`` requests from pod ``src`` (``ns/workload[#i]``) to ``url``
    answered with a status in ``statuses`` (default 200). The tolerance states the
    binomial design's pass band (e.g. ``88`` for 100 % expected, 10-point margin)."""
    allowed = set(statuses or [200])
    rs = _batch(src, url, count, timeout_s, concurrency, "success_count", body_bytes)
    return sum(1 for r in rs if r.status in allowed)


def bounded_count(src: str, url: str, max_latency_ms: float, count: int = 20,
                  statuses: List[int] = None, timeout_s: float = 3.0,
                  concurrency: int = 4, body_bytes: int = 0) -> int:
    """How many requests ended with an HTTP status in ``statuses`` (default 200, 504)
    within ``max_latency_ms`` (the policy's bound: (N+1) x T plus the stated slack).
    A hang (the probe's own ``timeout_s``), a reset or a late answer does not count.
    ``body_bytes``: POST a body of that size (a bandwidth limit's stated size)."""
    allowed = set(statuses or [200, 504])
    rs = _batch(src, url, count, timeout_s, concurrency, "bounded_count", body_bytes)
    return sum(1 for r in rs if r.status in allowed and r.latency_us / 1000 <= max_latency_ms)


def latency_quantile_ms(src: str, url: str, q: float = 0.99, count: int = 50,
                        timeout_s: float = 3.0, concurrency: int = 4) -> float:
    """The ``q`` quantile of the batch's latencies, in ms (failed requests included)."""
    rs = _batch(src, url, count, timeout_s, concurrency, "latency_quantile_ms")
    return _q(sorted(r.latency_us / 1000 for r in rs), float(q))


def sidecar_bypass_count(src: str, dst: str, count: int = 10, timeout_s: float = 2.0) -> int:
    """Plaintext requests from ``src`` straight to pod ``dst``'s IP and app port that the
    app answered *without its sidecar*: the app's ``/echo`` reports its TCP peer, which
    is 127.0.0.1 when the sidecar forwarded the request and the caller's own address
    when it bypassed the sidecar. Must be 0 in every phase (fail closed)."""
    d = faults.pod(dst)
    rs = _batch(src, f"http://{d.ip}:{d.port}/echo", count, timeout_s, 4,
                "sidecar_bypass_count")
    bypass = 0
    for r in rs:
        peer = str(r.json.get("peer", "")) if r.status else ""
        if r.status and peer and not peer.startswith("127.0.0.1:"):
            bypass += 1
    return bypass


def programmed(timeout_s: float = 10.0) -> bool:
    """The mesh says its current config is in force (the reference mesh: every sidecar
    ACKed the version and nothing is warming), within ``timeout_s``."""
    from meshproof.mesh.base import NotProgrammed

    ad = faults.adapter()
    try:
        ad.wait_programmed(ad.apply_all([]), float(timeout_s))
        return True
    except NotProgrammed:
        return False


_creds: Dict[str, Any] = {}


def _client_tls(src: str, identity: str) -> Any:
    """Client credentials for ``identity``'s workload, put into pod ``src``, issued once
    per run while the CA is up (valid 10 minutes), so a check during a CA outage still
    has them."""
    key = f"{src}|{identity}"
    have = _creds.get(key)
    if have is not None and time.monotonic() < have[1]:
        return have[0]
    from meshproof.conformance.tls import put_tls_files

    issued = faults.adapter().issue_certificate(faults.pod(identity), 600)
    tls = put_tls_files(faults.target(), faults.pod(src), "chaos-client", issued.cert,
                        issued.key, issued.root)
    _creds[key] = (tls, time.monotonic() + 500)
    return tls


def fresh_mtls_count(src: str, identity: str, dsts: List[str], count: int = 5,
                     timeout_s: float = 2.0) -> int:
    """Fresh mTLS handshakes (and a request each) from pod ``src``, with a mesh client
    certificate of ``identity``'s workload, straight to each pod of ``dsts`` (through its
    sidecar), the server's certificate verified against the mesh root (chain and
    validity). How many answered 200: every one means each sidecar serves a valid mesh
    certificate now. Traffic between sidecars cannot show it: their connections are
    pooled and keep the certificate they were opened with."""
    from meshproof.probe import order

    tls = _client_tls(src, identity)
    t, s = faults.target(), faults.pod(src)
    ok = 0
    for dst in dsts:
        d = faults.pod(dst)
        url = f"https://{d.ip}:{d.port}/echo"
        t0 = time.time()
        rs = t.probe(s, order(url, max(1, min(int(count), 50)), timeout_s=float(timeout_s),
                              tls=tls))
        lat = sorted(r.latency_us / 1000 for r in rs)
        good = sum(1 for r in rs if r.status == 200)
        faults.event("sample", probe="fresh_mtls_count", src=src, url=url, t0=t0,
                     t1=time.time(), body_bytes=0, n=len(rs), ok=good,
                     outcomes=_outcomes(rs), p50_ms=_q(lat, 0.5), p99_ms=_q(lat, 0.99),
                     max_ms=lat[-1] if lat else 0.0)
        ok += good
    return ok
