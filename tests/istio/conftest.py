"""Offline fixtures: the kube tests' FakeApiServer (a fake, not a real API server) and a
kubeconfig pointing at it, shared from tests/kube."""

from tests.kube.conftest import fake, local_exec  # noqa: F401
