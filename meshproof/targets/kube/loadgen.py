"""The load generator on a cluster: ``loadtests/podgen.py`` by exec, one exec per run.

Why by exec and stdlib-only: client pods run a stock Python image with the
app, the probe and the generator mounted from the namespace's ConfigMap
(``manifests.fixture_files``), so nothing is installed in a pod; the order
goes on stdin and the answer (histograms as counts per HDR bucket, see
podgen's docstring) comes back on stdout through the API server, the same
path as the probes, never over the pod network being measured. Nothing is
left running between runs: each run is one process that ends with it (a
run is bounded by its own duration; the exec by the run's budget).
"""

from __future__ import annotations

import json
from typing import Any

from meshproof.errors import TargetError
from meshproof.targets.base import LoadGenerator
from meshproof.targets.kube import execprobe
from meshproof.targets.kube.manifests import MOUNT

LOADGEN_CMD = ["python3", f"{MOUNT}/loadgen.py"]


class ExecLoadGenerator(LoadGenerator):
    def __init__(self, api: Any, namespace: str, pod: str, container: str = "app") -> None:
        from kubernetes.client import ApiClient

        # Its own client: the official client's ``stream()`` swaps the request method of
        # the ApiClient it is given for the length of the exec, so several generators
        # running at once (and the harness's own REST calls) must not share one.
        self.api = ApiClient(configuration=api.configuration)
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.label = f"{namespace}/{pod}"

    def _exec(self, arg: str, stdin: str, budget_s: float) -> Any:
        out, err, rc = execprobe.exec_in(self.api, self.namespace, self.pod,
                                         [*LOADGEN_CMD, arg], stdin, self.container, budget_s)
        answer = execprobe.json_answer(out, err, rc, f"load generator in {self.label}")
        if "error" in answer:
            raise TargetError(f"generator {self.label}: {answer['error']}")
        return answer["ok"]

    def run(self, order: dict[str, Any]) -> dict[str, Any]:
        budget = float(order["duration_s"]) + float(order.get("warmup_s", 1)) \
            + 2 * float(order.get("timeout_s", 5)) + 30
        return dict(self._exec("--once", json.dumps(order, separators=(",", ":")) + "\n",
                               budget))

    def info(self) -> dict[str, Any]:
        return dict(self._exec("--info", "", 30))

    def stop(self) -> None:
        """Nothing runs between orders (one process per run); the client is closed."""
        self.api.close()
