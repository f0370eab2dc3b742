"""A thin, dict-in dict-out layer over the official client's own REST machinery.

Why not the typed API classes: the objects meshproof makes are plain dicts
(``manifests`` builds them as pure functions, ``kubernetes-validate`` checks
them), and one generic path per kind keeps create / list / delete / patch
identical for core kinds, apps, networking and a mesh's CRDs. Authentication,
TLS and proxies stay the client's (``ApiClient.param_serialize`` /
``call_api``), so kubeconfig, ``--context`` and in-cluster config all work.
Every call is bounded (``timeout``) and retries nothing: preflight must fail
within seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API: ``group`` "" is the core group."""

    kind: str
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str = "", name: str = "", sub: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if sub:
            base += f"/{sub}"
        return base


KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("Namespace", "", "v1", "namespaces", namespaced=False),
    Kind("ConfigMap", "", "v1", "configmaps"),
    Kind("ServiceAccount", "", "v1", "serviceaccounts"),
    Kind("Service", "", "v1", "services"),
    Kind("Pod", "", "v1", "pods"),
    Kind("Event", "", "v1", "events"),
    Kind("Deployment", "apps", "v1", "deployments"),
    Kind("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies"),
    Kind("NetworkChaos", "chaos-mesh.org", "v1alpha1", "networkchaos"),
    Kind("SelfSubjectAccessReview", "authorization.k8s.io", "v1",
         "selfsubjectaccessreviews", namespaced=False),
    Kind("VirtualService", "networking.istio.io", "v1", "virtualservices"),
    Kind("DestinationRule", "networking.istio.io", "v1", "destinationrules"),
    Kind("PeerAuthentication", "security.istio.io", "v1", "peerauthentications"),
    Kind("AuthorizationPolicy", "security.istio.io", "v1", "authorizationpolicies"),
)}


class KubeApiError(Exception):
    """An API call failed: ``status`` 0 means no HTTP answer at all."""

    def __init__(self, status: int, reason: str, method: str, path: str) -> None:
        super().__init__(f"{method} {path}: {status or 'no answer'} {reason}".strip())
        self.status = status
        self.reason = reason


class Rest:
    """Generic calls on an ``ApiClient``; ``timeout`` is (connect, read) seconds."""

    def __init__(self, api: ApiClient, timeout: tuple[float, float] = (3.0, 10.0)) -> None:
        self.api = api
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, *,
             query: list[tuple[str, str]] | None = None, content_type: str = "",
             timeout: tuple[float, float] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            m, url, hdrs, data, post = self.api.param_serialize(
                method, path, query_params=query or [], header_params=headers, body=body,
                auth_settings=["BearerToken"])
            resp = self.api.call_api(m, url, header_params=hdrs, body=data, post_params=post,
                                     _request_timeout=timeout or self.timeout)
            resp.read()
        except ApiException as exc:
            raise KubeApiError(int(exc.status or 0), _reason(exc), method, path) from exc
        except Exception as exc:  # urllib3 connect/read errors: no HTTP answer
            raise KubeApiError(0, f"{type(exc).__name__}: {exc}"[:300], method, path) from exc
        if resp.status >= 400:
            raise KubeApiError(resp.status, _reason_text(resp.data), method, path)
        raw = resp.data or b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    # ------------------------------------------------------------ by kind

    def create(self, obj: Obj) -> Obj:
        k = KINDS[obj["kind"]]
        ns = obj.get("metadata", {}).get("namespace", "")
        return self.call("POST", k.path(ns), obj)  # type: ignore[no-any-return]

    def get(self, kind: str, namespace: str, name: str) -> Obj:
        return self.call("GET", KINDS[kind].path(namespace, name))  # type: ignore[no-any-return]

    def list(self, kind: str, namespace: str = "", selector: str = "",
             field_selector: str = "") -> list[Obj]:
        query = [("labelSelector", selector)] if selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        answer = self.call("GET", KINDS[kind].path(namespace), query=query)
        return list(answer.get("items") or [])

    def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            self.call("DELETE", KINDS[kind].path(namespace, name),
                      {"propagationPolicy": "Background"})
        except KubeApiError as exc:
            if exc.status != 404:
                raise

    def patch(self, kind: str, namespace: str, name: str, patch: Obj, sub: str = "") -> Obj:
        return self.call("PATCH", KINDS[kind].path(namespace, name, sub), patch,  # type: ignore[no-any-return]
                         content_type="application/merge-patch+json")

    def replace_or_create(self, obj: Obj) -> Obj:
        """Create ``obj``; if it exists, replace it (keeping its resourceVersion)."""
        try:
            return self.create(obj)
        except KubeApiError as exc:
            if exc.status != 409:
                raise
        meta = obj["metadata"]
        live = self.get(obj["kind"], meta.get("namespace", ""), meta["name"])
        body = {**obj, "metadata": {**meta, "resourceVersion":
                                    live["metadata"].get("resourceVersion", "")}}
        return self.call("PUT", KINDS[obj["kind"]].path(meta.get("namespace", ""),  # type: ignore[no-any-return]
                                                        meta["name"]), body)

    def version(self) -> Obj:
        return self.call("GET", "/version")  # type: ignore[no-any-return]


def _reason_text(data: Any) -> str:
    try:
        d = json.loads(data)
        return str(d.get("message") or d.get("reason") or "")[:300]
    except Exception:
        return str(data or "")[:300]


def _reason(exc: ApiException) -> str:
    return _reason_text(exc.body) if exc.body else str(exc.reason or "")
