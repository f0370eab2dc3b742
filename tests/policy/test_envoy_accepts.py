"""What the loader accepts, the reference mesh's Envoy accepts.

Every example file and every boundary case of the hostile corpus (the
largest weights, paths long enough to break Envoy's default RE2 limit,
``/a{1000}``, Unicode classes, ...) is loaded, turned into the sidecar
configs of the pods it concerns, and checked by ``envoy --mode validate``:
a value the loader takes must never be NACKed by every sidecar later.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from meshproof.intent import Policy
from meshproof.policy import load_text
from meshproof.targets.model import Registry
from tests.policy.conftest import EXAMPLES, ROOT
from tests.policy.hostile import accepted

if str(ROOT / "reference-mesh") not in sys.path:
    sys.path.insert(0, str(ROOT / "reference-mesh"))

from refmesh.bootstrap import SidecarPaths  # noqa: E402
from refmesh.envoy_binary import find_envoy  # noqa: E402
from refmesh.xds import build_sidecar  # noqa: E402
from refmesh.xds.static import static_bootstrap  # noqa: E402

#: A caller (outbound routes to every service) and a destination (inbound RBAC).
PODS = ("bookinfo/client-0", "team-b/echo-0")
CASES = [(p.name, p.read_text()) for p in sorted(EXAMPLES.glob("*.yaml"))] + accepted()


@pytest.fixture(scope="module")
def envoy() -> str:
    try:
        return str(find_envoy())
    except Exception as exc:  # noqa: BLE001 - any reason means: cannot check here
        pytest.skip(f"no Envoy binary: {exc}")


def envoy_validate(envoy: str, cfg: dict, d: Path) -> None:  # type: ignore[type-arg]
    path = d / "static.json"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "--disable-hot-restart",
                        "--log-level", "error"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "OK" in r.stdout + r.stderr, (r.stdout + r.stderr)[-1500:]


@pytest.mark.parametrize("name,text", CASES, ids=[n for n, _ in CASES])
def test_envoy_accepts_what_the_loader_accepts(name: str, text: str, registry: Registry,
                                               envoy: str) -> None:
    policy = Policy()
    for intent in load_text(text, name, registry=registry):
        policy = policy.with_intent(intent)
    pods = {p.key: p for p in registry.pods}
    with tempfile.TemporaryDirectory(prefix="pe-", dir="/tmp") as tmp:
        d = Path(tmp)
        paths = SidecarPaths(str(d / "ads"), str(d / "sds"), str(d / "admin"))
        for key in PODS:
            res = build_sidecar(registry, policy, pods[key])
            envoy_validate(envoy, static_bootstrap(res, key, paths), d)
