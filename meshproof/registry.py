"""The one registry of targets and meshes: the CLI, the pytest plugin, the load tooling
and the benchmarks all resolve ``--target`` and ``--mesh`` here.

Entries name their code as ``module:attribute`` strings, so resolving a name
imports only what that name needs (``--mesh none`` never builds the reference
adapter; the adapter never imports the lab). Test doubles register their own
entries with ``register_target`` / ``register_mesh``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshproof.errors import ConfigError

if TYPE_CHECKING:
    from meshproof.mesh.base import MeshAdapter
    from meshproof.targets.base import Target


@dataclass(frozen=True)
class TargetEntry:
    name: str
    description: str
    #: ``module:function(mesh: MeshEntry, defect: str, **options) -> Target`` that brings
    #: the topology up with the mesh installed, and ``module:function() -> Target`` that
    #: attaches to one that runs.
    start: str = ""
    attach: str = ""
    #: Why it cannot be used in this version ("" = usable).
    unavailable: str = ""


@dataclass(frozen=True)
class MeshEntry:
    name: str
    description: str
    #: ``module:Class`` of the MeshAdapter, built with the target it runs on.
    adapter: str
    #: Which mesh a target installs for this entry (two adapters may drive one mesh).
    installs: str = ""
    #: target name -> ``module:function`` that installs the mesh into that target.
    installers: dict[str, str] = field(default_factory=dict)
    unavailable: str = ""


TARGETS: dict[str, TargetEntry] = {}
MESHES: dict[str, MeshEntry] = {}


def register_target(entry: TargetEntry) -> None:
    TARGETS[entry.name] = entry


def register_mesh(entry: MeshEntry) -> None:
    MESHES[entry.name] = entry


register_target(TargetEntry(
    "local", "network-namespace lab on this Linux host (needs root)",
    start="meshproof.targets.local.client:start_target",
    attach="meshproof.targets.local.client:LocalTarget.attach"))
register_target(TargetEntry(
    "kube", "any Kubernetes cluster reachable by kubeconfig (MESHPROOF_KUBE_CONTEXT, "
    "KUBECONFIG; in-cluster config inside a pod); preflight before anything is created",
    start="meshproof.targets.kube.target:start_target",
    attach="meshproof.targets.kube.target:attach"))

_REFERENCE_INSTALLERS = {"local": "meshproof.mesh.reference_local:install"}
register_mesh(MeshEntry(
    "reference", "meshproof's reference mesh, programmed = every sidecar ACKed",
    "meshproof.mesh.reference:ReferenceMesh", "reference", _REFERENCE_INSTALLERS))
register_mesh(MeshEntry(
    "reference-blackbox", "the reference mesh driven only by policy files, programmed = "
    "the sentinel method (how third-party meshes are driven)",
    "meshproof.mesh.blackbox:ReferenceBlackbox", "reference", _REFERENCE_INSTALLERS))
register_mesh(MeshEntry(
    "reference-acked", "the reference mesh, programmed = the control plane's ACKs alone "
    "(how ACK-based adapters decide it; for the programmed-signal checks)",
    "meshproof.mesh.reference:ReferenceAcked", "reference", _REFERENCE_INSTALLERS))
register_mesh(MeshEntry(
    "none", "no mesh: the bare topology (every check is skipped)",
    "meshproof.mesh.base:NoMesh", "none"))
register_mesh(MeshEntry(
    "istio", "Istio on a Kubernetes cluster (--target kube), programmed = istiod's per-proxy "
    "sync status, else the sentinel method",
    "meshproof.mesh.istio.adapter:IstioMesh", "istio",
    {"kube": "meshproof.mesh.istio.adapter:kube_profile"}))
for _name in ("linkerd", "consul"):
    register_mesh(MeshEntry(
        _name, f"{_name.capitalize()} on a Kubernetes cluster", "", _name,
        unavailable=f"the {_name} adapter is not available in this version: use --mesh "
                    "istio on --target kube, or --mesh reference (or reference-blackbox)"))


def resolve(ref: str) -> Any:
    """``module:attr.attr`` -> the object."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _unknown(kind: str, name: str, known: dict[str, Any]) -> ConfigError:
    return ConfigError(f"unknown {kind} {name!r}", f"{kind}s: {', '.join(sorted(known))}")


def target_entry(name: str) -> TargetEntry:
    """The usable target ``name``, or a ConfigError that lists the known ones."""
    if name not in TARGETS:
        raise _unknown("target", name, TARGETS)
    entry = TARGETS[name]
    if entry.unavailable:
        raise ConfigError(entry.unavailable)
    return entry


def mesh_entry(name: str, target: str | None = None) -> MeshEntry:
    """The usable mesh ``name`` (on ``target``, when given)."""
    if name not in MESHES:
        raise _unknown("mesh", name, MESHES)
    entry = MESHES[name]
    if entry.unavailable:
        raise ConfigError(entry.unavailable)
    if target is not None and entry.installs != "none" and target not in entry.installers:
        raise ConfigError(f"mesh {name!r} cannot be installed on target {target!r}",
                          f"it installs on: {', '.join(sorted(entry.installers))}")
    return entry


def check_defect(mesh: MeshEntry, defect: str) -> None:
    """Refuse an unknown defect, or one this mesh cannot inject, before anything is made."""
    if not defect:
        return
    from meshproof.mesh import defects

    defects.require(defect)
    if mesh.installs == "none":
        raise ConfigError(f"defect {defect!r} needs a mesh; --mesh none has none",
                          "use --mesh reference")


def local_installer(installs: str) -> Callable[..., Any] | None:
    """What the local lab calls to install mesh ``installs`` (None: no mesh)."""
    for entry in MESHES.values():
        if entry.installs == installs and "local" in entry.installers:
            return resolve(entry.installers["local"])  # type: ignore[no-any-return]
    if installs == "none":
        return None
    raise ConfigError(f"no mesh installs as {installs!r} on the local target",
                      "installable: " + ", ".join(sorted(
                          {e.installs for e in MESHES.values() if "local" in e.installers})))


def adapter_for(mesh: MeshEntry, target: Target) -> MeshAdapter:
    return resolve(mesh.adapter)(target)  # type: ignore[no-any-return]


def start_target(target: str, mesh: str, defect: str = "", **options: Any) -> Target:
    """Bring up the topology on ``target`` with ``mesh`` installed (validated first)."""
    t_entry, m_entry = target_entry(target), mesh_entry(mesh, target)
    check_defect(m_entry, defect)
    return resolve(t_entry.start)(m_entry, defect, **options)  # type: ignore[no-any-return]


def attach_target(target: str) -> Target:
    return resolve(target_entry(target).attach)()  # type: ignore[no-any-return]
