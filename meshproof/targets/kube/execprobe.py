"""Probes by exec: one exec per batch, the order on stdin, the answer on stdout.

``python3 /meshproof/probe.py --once`` in the source pod's app container
reads the ProbeOrder's wire form (one JSON line) and writes the batch's
answer (one JSON line); the results become the same typed ``ProbeResult``
as on the local target. The exec goes through the API server (websocket,
the client's ``stream``), so harness <-> pod control never crosses the pod
network it measures.
"""

from __future__ import annotations

import json
from typing import Any

from meshproof.errors import TargetError
from meshproof.targets.kube.manifests import PROBE_CMD
from meshproof.targets.model import ProbeOrder, ProbeResult


def exec_in(api: Any, namespace: str, pod: str, command: list[str], stdin: str = "",
            container: str = "app", timeout_s: float = 60.0) -> tuple[str, str, int | None]:
    """Run ``command`` in the pod; returns (stdout, stderr, exit code or None if it did
    not end within ``timeout_s``)."""
    from kubernetes import client
    from kubernetes.stream import stream

    core = client.CoreV1Api(api)
    try:
        ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=command,
                    container=container, stdin=bool(stdin), stdout=True, stderr=True,
                    tty=False, _preload_content=False, _request_timeout=timeout_s)
    except Exception as exc:
        raise TargetError(f"exec in {namespace}/{pod} failed: {exc}"[:400],
                          "is the pod running? 'meshproof status --target kube'") from exc
    try:
        if stdin:
            ws.write_stdin(stdin)
        ws.run_forever(timeout=timeout_s)
        out, err = ws.read_stdout(timeout=0), ws.read_stderr(timeout=0)
        rc = ws.returncode if not ws.is_open() else None
    finally:
        ws.close()
    return out or "", err or "", rc


def probe(api: Any, namespace: str, pod: str, order: ProbeOrder,
          container: str = "app") -> list[ProbeResult]:
    line = json.dumps(order.to_wire(), separators=(",", ":")) + "\n"
    out, err, rc = exec_in(api, namespace, pod, PROBE_CMD, line, container, order.budget_s)
    return parse_answer(out, err, rc, f"{namespace}/{pod}")


def json_answer(out: str, err: str, rc: int | None, what: str) -> Any:
    """The last JSON line a one-shot program in a pod wrote (the probe, the load
    generator), or a TargetError saying why there is none."""
    if rc is None:
        raise TargetError(f"the {what} did not answer within its budget",
                          "the pod may be overloaded or starved of CPU: its logs and "
                          "events are in the evidence")
    last = next((ln for ln in reversed(out.splitlines()) if ln.strip()), "")
    try:
        return json.loads(last)
    except ValueError as exc:
        raise TargetError(f"the {what} answered no JSON (exit {rc}): "
                          f"{(err or out)[-300:]!r}",
                          "is python3 in the image? set MESHPROOF_KUBE_IMAGE") from exc


def parse_answer(out: str, err: str, rc: int | None, where: str) -> list[ProbeResult]:
    answer = json_answer(out, err, rc, f"probe in {where}")
    if "error" in answer and "results" not in answer:
        raise TargetError(f"the probe in {where} refused the order: {answer['error']}")
    return [ProbeResult.from_wire(r) for r in answer.get("results", [])]
