"""The kube target: any Kubernetes cluster, through the official ``kubernetes`` client.

Small modules, one job each: ``config`` (kubeconfig, context, in-cluster; the
mesh profile), ``preflight`` (before anything is created), ``manifests``
(pure functions topology -> objects), ``apply`` (create, bounded readiness
waits), ``execprobe`` (one exec per probe batch), ``capabilities``,
``cleanup`` (by run label), ``target`` (KubeTarget, start/attach/down).
"""
