"""The fixture topology's pods as checks name them: by namespace and workload.

A check says "team-a's client" or "team-b's echo", never a target's pod name,
so it runs unchanged where pods are called ``client-7d9f-x2`` (kube).
"""

from __future__ import annotations

from meshproof.targets.base import Target
from meshproof.targets.model import Pod

#: Where the unmeshed (plaintext) caller lives.
OUTSIDE = "outside"


def client(target: Target, namespace: str) -> Pod:
    """The namespace's client pod: what checks send from."""
    return target.pod(namespace, "client")


def echo(target: Target, namespace: str) -> Pod:
    """The namespace's echo pod (team-a/b/c): what access and mTLS checks call."""
    return target.pod(namespace, "echo")
