"""Preflight: everything a run needs, checked before anything is created.

Order matters: reachable (one bounded GET /version), then each permission
(one SelfSubjectAccessReview per verb and resource: the API server answers
for the caller's own identity, no RBAC read rights needed), then the mesh's
control plane present. Each failure is a ``TargetError`` (exit 2) naming what
is wrong, for which kubeconfig/context, and what to do; none of it creates
anything (an SSAR is not persisted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshproof.errors import TargetError
from meshproof.targets.kube.config import KubeOptions, MeshProfile
from meshproof.targets.kube.rest import KubeApiError, Rest

#: (verb, group, resource, namespace) every run needs; "" namespace = all namespaces.
REQUIRED: tuple[tuple[str, str, str, str], ...] = (
    ("create", "", "namespaces", ""), ("delete", "", "namespaces", ""),
    ("list", "", "namespaces", ""),
    ("create", "", "configmaps", ""), ("create", "", "serviceaccounts", ""),
    ("create", "", "services", ""),
    ("create", "apps", "deployments", ""), ("list", "apps", "deployments", ""),
    ("patch", "apps", "deployments/scale", ""),
    ("list", "", "pods", ""), ("get", "", "pods", ""), ("delete", "", "pods", ""),
    ("patch", "", "pods", ""),
    ("create", "", "pods/exec", ""), ("get", "", "pods/log", ""),
    ("list", "", "events", ""),
)
#: Optional: a missing one removes a capability (named) instead of failing the run.
OPTIONAL: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "block": (("create", "networking.k8s.io", "networkpolicies", ""),
              ("delete", "networking.k8s.io", "networkpolicies", "")),
}
MIN_MINOR = 26  # restricted PodSecurity labels (GA 1.25), ephemeral containers (GA 1.25)


#: Chaos Mesh's partition (used for ``block`` when installed and permitted).
CHAOS_MESH = (("create", "chaos-mesh.org", "networkchaos", ""),
              ("delete", "chaos-mesh.org", "networkchaos", ""))


@dataclass
class Preflight:
    server_version: str
    denied_optional: dict[str, str] = field(default_factory=dict)
    control_plane: list[str] = field(default_factory=list)
    #: Chaos Mesh's NetworkChaos is served and we may create/delete it ("" = why not)
    chaos_mesh: bool = False
    chaos_mesh_why: str = ""


def chaos_mesh(rest: Rest, where: str) -> tuple[bool, str]:
    """Is Chaos Mesh installed (its API group serves ``networkchaos``) and permitted?"""
    try:
        doc = rest.call("GET", "/apis/chaos-mesh.org/v1alpha1")
    except KubeApiError as exc:
        return False, ("Chaos Mesh is not installed (no chaos-mesh.org/v1alpha1)"
                       if exc.status == 404 else f"Chaos Mesh's API did not answer: {exc}")
    names = {r.get("name") for r in (doc.get("resources") or []) if isinstance(r, dict)} \
        if isinstance(doc, dict) else set()
    if "networkchaos" not in names:
        return False, "Chaos Mesh's API serves no networkchaos"
    for perm in CHAOS_MESH:
        ok, _ = _allowed(rest, perm, where)
        if not ok:
            return False, f"Chaos Mesh is installed but we may not {_fmt(perm)}"
    return True, ""


def _fmt(perm: tuple[str, str, str, str]) -> str:
    verb, group, resource, ns = perm
    res = f"{resource}.{group}" if group else resource
    return f"{verb} {res}" + (f" in namespace {ns}" if ns else " (all namespaces)")


def allowed(rest: Rest, perm: tuple[str, str, str, str]) -> tuple[bool, str]:
    verb, group, resource, ns = perm
    res, _, sub = resource.partition("/")
    attrs = {"verb": verb, "group": group, "resource": res}
    if sub:
        attrs["subresource"] = sub
    if ns:
        attrs["namespace"] = ns
    answer = rest.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs}})
    status = answer.get("status") or {}
    return bool(status.get("allowed")), str(status.get("reason") or "")


def run(rest: Rest, opts: KubeOptions, profile: MeshProfile, *,
        component_outage: bool = False) -> Preflight:
    where = opts.where()
    try:
        ver = rest.version()
    except KubeApiError as exc:
        if exc.status in (401, 403):
            raise TargetError(f"the cluster refused our credentials ({where}): {exc.reason}",
                              "refresh the credentials (e.g. re-login) or pick another "
                              "context with MESHPROOF_KUBE_CONTEXT") from exc
        raise TargetError(f"the cluster is unreachable ({where}): {exc.reason}",
                          "is the cluster running and the kubeconfig's server address "
                          "right? try: kubectl --context CONTEXT version") from exc
    version = str(ver.get("gitVersion") or f"v{ver.get('major')}.{ver.get('minor')}")
    minor = "".join(c for c in str(ver.get("minor", "")) if c.isdigit())
    if str(ver.get("major")) == "1" and minor and int(minor) < MIN_MINOR:
        raise TargetError(f"the cluster runs Kubernetes {version} ({where}); meshproof "
                          f"needs 1.{MIN_MINOR} or newer", "upgrade the cluster or use another")
    perms = list(REQUIRED) + list(profile.permissions)
    if component_outage and profile.control_plane_namespace:
        perms.append(("patch", "apps", "deployments/scale", profile.control_plane_namespace))
    missing = []
    for perm in perms:
        ok, reason = _allowed(rest, perm, where)
        if not ok:
            missing.append(_fmt(perm) + (f" ({reason})" if reason else ""))
    if missing:
        raise TargetError(
            f"missing permission(s) for this run ({where}): cannot " + "; cannot ".join(missing),
            "grant them (e.g. a ClusterRole bound to your user; docs/kube.md lists every "
            "verb and resource), or use a context that has them")
    out = Preflight(version)
    for cap, cap_perms in OPTIONAL.items():
        for perm in cap_perms:
            ok, _ = _allowed(rest, perm, where)
            if not ok:
                out.denied_optional[cap] = f"not permitted to {_fmt(perm)}"
                break
    out.chaos_mesh, out.chaos_mesh_why = chaos_mesh(rest, where)
    if profile.control_plane_namespace:
        try:
            deps = rest.list("Deployment", profile.control_plane_namespace,
                             profile.control_plane_selector)
        except KubeApiError as exc:
            raise TargetError(f"cannot look for {profile.name}'s control plane in namespace "
                              f"{profile.control_plane_namespace} ({where}): {exc.reason}",
                              profile.control_plane_hint) from exc
        ready = [d["metadata"]["name"] for d in deps
                 if int((d.get("status") or {}).get("readyReplicas") or 0) > 0]
        if not ready:
            what = "is not ready" if deps else "is not installed"
            raise TargetError(
                f"{profile.name}'s control plane ({profile.control_plane_selector} in "
                f"namespace {profile.control_plane_namespace}) {what} ({where})",
                profile.control_plane_hint)
        out.control_plane = ready
    return out


def _allowed(rest: Rest, perm: tuple[str, str, str, str], where: str) -> tuple[bool, str]:
    try:
        return allowed(rest, perm)
    except KubeApiError as exc:
        raise TargetError(f"cannot ask the cluster what we may do ({where}): {exc}",
                          "SelfSubjectAccessReview must be allowed (it is for every "
                          "authenticated user by default)") from exc
