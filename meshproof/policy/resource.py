"""One policy document's envelope: apiVersion, kind, metadata; the spec left raw.

Reading the envelope first lets every later error name the resource
(``TrafficSplit bookinfo/reviews``) even when the spec itself is broken.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from meshproof.policy.errors import Location
from meshproof.policy.fields import Obj

_TOP = frozenset({"apiVersion", "kind", "metadata", "spec"})
_METADATA = frozenset({"name", "namespace", "labels", "annotations"})


@dataclass(frozen=True)
class Resource:
    """A document's identity and its unread ``spec``."""

    loc: Location
    api_version: str
    kind: str
    namespace: str  # "" when the document gave none
    name: str
    spec: Any

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def locate(doc: Any, loc: Location) -> Location:
    """``loc`` with whatever identity the raw document gives, before validation.

    So that an error in the envelope itself still names the resource as far
    as it can be read.
    """
    if not isinstance(doc, dict):
        return loc
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    kind, ns, name = doc.get("kind"), meta.get("namespace"), meta.get("name")
    return replace(loc, kind=kind if isinstance(kind, str) else "",
                   namespace=ns if isinstance(ns, str) else "",
                   name=name if isinstance(name, str) else "")


def read_envelope(doc: Any, loc: Location) -> Resource:
    """The resource a document declares (``FieldError`` if the envelope is malformed)."""
    top = Obj(doc, "", _TOP, {"apiVersion", "kind", "metadata"})
    api_version = top.text("apiVersion")
    kind = top.text("kind")
    meta = top.child("metadata", _METADATA, {"name"})
    name = meta.name("name", subdomain=True)
    namespace = meta.name("namespace")
    meta.string_map("labels")
    meta.string_map("annotations")
    return Resource(loc, api_version, kind, namespace, name, top.raw("spec"))
