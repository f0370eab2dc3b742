"""Which cluster, as whom, and the run's knobs: kubeconfig, ``--context``, in-cluster.

Options come from the caller (``start_target(..., kubeconfig=, context=, image=)``)
or the environment, because ``meshproof conformance`` passes no target options:
``MESHPROOF_KUBECONFIG`` (else ``KUBECONFIG``, else ``~/.kube/config``),
``MESHPROOF_KUBE_CONTEXT`` (else the kubeconfig's current context),
``MESHPROOF_KUBE_IMAGE`` (the stock Python image; override for air-gapped
clusters), ``MESHPROOF_ALLOW_COMPONENT_OUTAGE=1`` (may scale the mesh's
control plane to 0). Inside a pod with no kubeconfig, the in-cluster
service account is used.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshproof.errors import ConfigError, TargetError

#: The stock image the app and probe run from (they are stdlib-only Python files).
DEFAULT_IMAGE = "python:3.12-slim"
RUN_LABEL = "meshproof.io/run"
MANAGED_LABEL = "meshproof.io/managed"
OWNER_ANNOTATION = "meshproof.io/owner"
#: Bounds (seconds) for every wait: nothing waits forever.
READY_TIMEOUT_S = 300.0
DELETE_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class MeshProfile:
    """What the kube target needs to know about a mesh before it creates anything
    (the adapter module provides it: ``MeshEntry.installers["kube"]``)."""

    name: str
    #: Labels and annotations that make a namespace's pods meshed (injection).
    namespace_labels: dict[str, str] = field(default_factory=dict)
    namespace_annotations: dict[str, str] = field(default_factory=dict)
    #: Where the control plane runs: namespace and a label selector of its Deployment.
    control_plane_namespace: str = ""
    control_plane_selector: str = ""
    control_plane_hint: str = ""
    #: Can meshed pods meet the restricted PodSecurity profile (e.g. Istio only with CNI)?
    meshed_restricted: bool = False
    #: Extra (verb, group, resource, namespace) the mesh's adapter needs.
    permissions: tuple[tuple[str, str, str, str], ...] = ()
    #: Kinds the adapter creates (rest.KINDS names), swept by run label at cleanup.
    resource_kinds: tuple[str, ...] = ()


NO_MESH = MeshProfile("none")


@dataclass(frozen=True)
class KubeOptions:
    kubeconfig: str = ""
    context: str = ""
    image: str = DEFAULT_IMAGE
    allow_component_outage: bool = False
    run_id: str = ""
    ready_timeout_s: float = READY_TIMEOUT_S

    @classmethod
    def from_env(cls, **given: Any) -> KubeOptions:
        env = os.environ
        kubeconfig = (given.get("kubeconfig") or env.get("MESHPROOF_KUBECONFIG")
                      or env.get("KUBECONFIG", "").split(os.pathsep)[0])
        outage = given.get("allow_component_outage")
        if outage is None:
            outage = env.get("MESHPROOF_ALLOW_COMPONENT_OUTAGE", "") in ("1", "true", "yes")
        return cls(kubeconfig=str(kubeconfig or ""),
                   context=str(given.get("context") or env.get("MESHPROOF_KUBE_CONTEXT", "")),
                   image=str(given.get("image") or env.get("MESHPROOF_KUBE_IMAGE")
                             or DEFAULT_IMAGE),
                   allow_component_outage=bool(outage),
                   run_id=str(given.get("run_id") or new_run_id()),
                   ready_timeout_s=float(given.get("ready_timeout_s") or READY_TIMEOUT_S))

    @property
    def kubeconfig_path(self) -> str:
        return self.kubeconfig or str(Path.home() / ".kube" / "config")

    def where(self) -> str:
        """How the user names this cluster: kubeconfig and context (or in-cluster)."""
        if self.in_cluster():
            return "in-cluster service account"
        return (f"kubeconfig {self.kubeconfig_path}, context "
                f"{self.context or current_context(self.kubeconfig_path)}")

    def in_cluster(self) -> bool:
        return (not self.kubeconfig and not Path(self.kubeconfig_path).exists()
                and bool(os.environ.get("KUBERNETES_SERVICE_HOST")))


def current_context(path: str) -> str:
    """The kubeconfig's current-context, for messages (never fails)."""
    try:
        import yaml

        with open(path) as fh:
            name = (yaml.safe_load(fh) or {}).get("current-context")
        return f"{name} (current-context)" if name else "(no current-context)"
    except Exception:
        return "(current-context)"


def new_run_id() -> str:
    return "r" + secrets.token_hex(4)


def owner() -> str:
    """Who runs this run (the next run uses it to tell a killed run from a live one)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def api_client(opts: KubeOptions) -> Any:
    """An ``ApiClient`` for the options' cluster, or a TargetError naming what to fix."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    cfg = client.Configuration()
    try:
        if opts.in_cluster():
            config.load_incluster_config(client_configuration=cfg)
        else:
            if not Path(opts.kubeconfig_path).exists():
                raise TargetError(
                    f"no kubeconfig at {opts.kubeconfig_path} (and not running in a pod)",
                    "point KUBECONFIG or MESHPROOF_KUBECONFIG at one, or create a cluster "
                    "(e.g. kind create cluster)")
            config.load_kube_config(config_file=opts.kubeconfig_path,
                                    context=opts.context or None,
                                    client_configuration=cfg, persist_config=False)
    except ConfigException as exc:
        raise ConfigError(f"cannot use {opts.where()}: {exc}",
                          "check the file and the context name "
                          "(kubectl config get-contexts); set MESHPROOF_KUBE_CONTEXT") from exc
    except TargetError:
        raise
    except Exception as exc:  # a malformed file: yaml errors, missing keys
        raise ConfigError(f"cannot read {opts.where()}: {type(exc).__name__}: {exc}",
                          "check the kubeconfig file") from exc
    cfg.retries = 0  # preflight must fail in seconds, not after urllib3's retries
    return client.ApiClient(cfg)
