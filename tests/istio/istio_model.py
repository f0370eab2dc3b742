"""Check an Istio resource field by field against Istio's CRD API, using the typed
models generated from Istio's CRDs (cloudcoil-models-istio 1.24, which has
networking.istio.io/v1 and security.istio.io/v1). The models ignore unknown
fields instead of refusing them, so strictness comes from a round trip: what
the model keeps must equal what we wrote; a dropped field is an unknown one."""

from __future__ import annotations

from typing import Any

from cloudcoil.models.istio.networking import v1 as net
from cloudcoil.models.istio.security import v1 as sec

MODELS = {("networking.istio.io/v1", "VirtualService"): net.VirtualService,
          ("networking.istio.io/v1", "DestinationRule"): net.DestinationRule,
          ("security.istio.io/v1", "PeerAuthentication"): sec.PeerAuthentication,
          ("security.istio.io/v1", "AuthorizationPolicy"): sec.AuthorizationPolicy}


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in b:
                out.append(f"{path}.{k}: unknown to Istio's API (dropped by the model)")
            elif k not in a:
                out.append(f"{path}.{k}: added by the model")
            else:
                out += diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [x for i, (p, q) in enumerate(zip(a, b)) for x in diff(p, q, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} became {b!r}"]


def check(doc: dict[str, Any]) -> None:
    """Raise AssertionError naming each field Istio's API does not have (or types wrong)."""
    model = MODELS[(doc["apiVersion"], doc["kind"])]
    obj = model.model_validate(doc)  # type errors raise pydantic's ValidationError
    back = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    problems = diff(doc, back)
    assert not problems, f"{doc['kind']} {doc['metadata']['name']}: " + "; ".join(problems)
