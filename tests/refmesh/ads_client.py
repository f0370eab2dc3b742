"""A bare ADS client that claims a node: what an impostor (or the node's own proxy) would send.

Run as root with the uid under test::

    python ads_client.py SOCKET NODE --as-uid UID [--nack] [--timeout S] [--tcp HOST:PORT]

It imports grpc as root (the venv's interpreter lives under /root, 0700),
then drops to UID for good before it connects: the kernel records the peer
at connect(), so the control plane sees exactly what a process of that uid
would show it.

Sends one LDS request for NODE (with ``--nack`` the first request already
carries a NACK, the way an impostor would try to poison "programmed"),
waits for the first response and ACKs it. Prints one JSON line:
``{"code": "OK" | "PERMISSION_DENIED" | ..., "details": str,
"resources": N, "version": str}``. ``--tcp`` dials the control plane's
gRPC port directly instead of the Unix socket (a bypass attempt).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys

import grpc
import grpc._channel  # noqa: F401  (grpc imports these lazily: load them while still root,
import grpc.experimental  # noqa: F401  before setuid, when the venv may be unreadable)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("socket")
    ap.add_argument("node")
    ap.add_argument("--nack", action="store_true")
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--tcp", default="")
    ap.add_argument("--as-uid", type=int, required=True)
    a = ap.parse_args()
    os.setgroups([])
    os.setgid(a.as_uid)
    os.setuid(a.as_uid)
    target = a.tcp or f"unix:{a.socket}"
    out: dict[str, object] = {"code": "OK", "details": "", "resources": 0, "version": ""}
    requests: queue.Queue[discovery_pb2.DiscoveryRequest | None] = queue.Queue()
    first = discovery_pb2.DiscoveryRequest(type_url=LDS)
    first.node.id = a.node
    if a.nack:
        first.version_info = "1"
        first.response_nonce = "1"
        first.error_detail.code = 13
        first.error_detail.message = "impostor NACK"
    requests.put(first)

    def gen():  # type: ignore[no-untyped-def]
        while (r := requests.get()) is not None:
            yield r

    with grpc.insecure_channel(target) as ch:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch)
        call = stub.StreamAggregatedResources(gen(), timeout=a.timeout)
        try:
            resp = next(call)
            out.update(resources=len(resp.resources), version=resp.version_info)
            requests.put(discovery_pb2.DiscoveryRequest(  # the ACK
                type_url=LDS, version_info=resp.version_info, response_nonce=resp.nonce))
            requests.put(None)
            call.cancel()
        except grpc.RpcError as exc:
            out.update(code=exc.code().name, details=exc.details() or "")
        except StopIteration:
            out.update(code="CLOSED")
        finally:
            requests.put(None)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
