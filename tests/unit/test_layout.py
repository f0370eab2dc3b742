"""Layout rules a reviewer would otherwise check by hand: neutral checks, layers that
import alone, and no import cycles hidden by pytest loading the plugin first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = sorted((ROOT / "conformance").glob("*.py"))


@pytest.mark.parametrize("path", CHECKS, ids=lambda p: p.name)
def test_checks_name_no_lab_pod_and_import_no_target_or_mesh_engine(path):
    text = path.read_text()
    assert not re.search(r"[\"'][\w-]+/[\w-]+-\d+[\"']", text), "a pod named by a lab string"
    for banned in ("meshproof.targets.local", "refmesh", "meshproof.mesh.reference",
                   "as_proxy_uid", "bootstrap_token", "swap_identity"):
        assert banned not in text, banned


def modules() -> list[str]:
    out = []
    for f in sorted((ROOT / "meshproof").rglob("*.py")):
        rel = f.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.append(".".join(parts))
    return out


def test_every_module_imports_first_in_a_fresh_interpreter():
    """Each module imported first, alone (import cycles show only that way)."""
    code = ("import importlib, sys\nbad = []\nfor m in sys.argv[1:]:\n"
            "    import subprocess\n"
            "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True,"
            " text=True)\n"
            "    bad += [f'{m}: {r.stderr.strip().splitlines()[-1]}'] if r.returncode else []\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)")
    mods = [m for m in modules() if not m.endswith("__main__")]
    cp = subprocess.run([sys.executable, "-c", code, *mods], capture_output=True, text=True,
                        timeout=300, cwd=ROOT)
    assert cp.returncode == 0, cp.stdout


@pytest.mark.parametrize("layer", ["meshproof.probe", "meshproof.verdict.judgement",
                                   "meshproof.verdict.stats", "meshproof.report.conformance",
                                   "meshproof.report.diff", "meshproof.mesh.reference",
                                   "meshproof.mesh.blackbox", "meshproof.registry"])
def test_layers_import_without_pytest_or_the_lab(layer):
    _imports_without(layer, ("pytest", "_pytest", "meshproof.targets.local"))


def _imports_without(module: str, banned: tuple[str, ...]) -> None:
    """``module`` imported alone in a fresh interpreter loads no module under ``banned``."""
    code = (f"import sys, {module}\n"
            f"bad = [m for m in sys.modules if m.startswith({banned!r})]\n"
            "assert not bad, bad")
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=60, cwd=ROOT)
    assert cp.returncode == 0, cp.stderr[-800:]


def test_instances_name_everything_apart() -> None:
    """MESHPROOF_INSTANCE gives a lab its own netns prefix, run dir and lock (fresh process),
    none of which the default lab's names match; a bad name is refused with what to do."""
    code = ("from meshproof import paths; from meshproof.targets.local import lock, netns; "
            "print(netns.PREFIX, netns.FABRIC, paths.RUN_DIR, lock.LOCK_PATH, "
            "netns.pod_netns('team-a', 'echo-0'))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHPROOF_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "MESHPROOF_INSTANCE": "ci7"}, timeout=60, check=True)
    assert out.stdout.split() == ["mpci7-", "mpci7-fabric", "/run/meshproof-ci7",
                                  "/run/lock/meshproof-ci7.lock", "mpci7-team-a-echo-0"]
    assert not "mpci7-team-a-echo-0".startswith("mp-")  # the default lab's sweep never matches
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=60, check=True)
    assert default.stdout.split() == ["mp-", "mp-fabric", "/run/meshproof",
                                      "/run/lock/meshproof.lock", "mp-team-a-echo-0"]
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "MESHPROOF_INSTANCE": "Bad-Name"}, timeout=60)
    assert bad.returncode != 0 and "MESHPROOF_INSTANCE" in bad.stderr and "unset it" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("module", ["meshproof.load.session", "meshproof.load.runner",
                                    "meshproof.load.group", "meshproof.load.__main__"])
def test_the_load_harness_reaches_pods_only_through_the_target_interface(module):
    """The load session runs on any target (local lab, cluster): importing it pulls in no
    target's internals and no mesh engine, and it names no target (no branch on one)."""
    _imports_without(module, ("meshproof.targets.local", "meshproof.targets.kube",
                              "refmesh", "kubernetes"))
    src = (ROOT / (module.replace(".", "/") + ".py")).read_text()
    assert not re.search(r"==\s*[\"'](local|kube)[\"']|[\"'](local|kube)[\"']\s*==", src)
