"""Hostile inputs: the CLI refuses each with exit 2 and a located message, within
2 s of CPU and 200 MB, or accepts it and Envoy then accepts the mesh's config.

Each case runs ``meshproof apply --dry-run -f FILE`` in its own process,
with an address-space limit (so a regression fails instead of swapping the
machine) and its peak RSS and CPU time measured by ``wait4``: checked, not
assumed. The bound is on CPU time (user + system, the child's own rusage), which
is what an expensive input costs: wall time on a shared 2-core machine grows
with everyone else's load (a case of 0.2 s CPU took over 2 s of wall beside two
CPU burners), and would fail a fast loader. A hang uses no CPU, so a generous
wall bound stays, against hangs only.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.policy.conftest import ROOT
from tests.policy.hostile import accepted, refused

#: CPU seconds (user + system) one case may take: each takes 0.1-0.3 s here (the
#: interpreter's start-up included), so a quadratic or exponential input stands out.
MAX_CPU_SECONDS = 2.0
#: Wall seconds, against hangs only (a hang burns no CPU): at load average 30 on 2
#: cores a process gets about 1/15 of a core, so 2 s of CPU may take ~30 s of wall.
MAX_WALL_SECONDS = 45.0
MAX_RSS_MB = 200
#: Address space for the child: well above the RSS bound (Python maps more than it
#: touches), well below what a runaway would take.
ADDRESS_SPACE = 1 << 30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


#: Linux keeps ru_maxrss across execve, so a child forked straight from this (large)
#: pytest process would report pytest's own RSS as its peak. A small launcher execs
#: first, then forks the CLI: the CLI's peak and CPU are its own. It writes
#: "status maxrss_kb cpu_seconds".
_LAUNCH = ("import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[2], sys.argv[2:])\n"
           "_, st, u = os.wait4(pid, 0)\n"
           "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(st)} {u.ru_maxrss} '\n"
           "                             f'{u.ru_utime + u.ru_stime}')\n")


@dataclass(frozen=True)
class Cost:
    """What one CLI run took: CPU seconds (its own rusage), wall seconds, peak RSS."""

    cpu_s: float
    wall_s: float
    rss_mb: float

    def check(self) -> None:
        assert self.cpu_s < MAX_CPU_SECONDS, f"{self.cpu_s:.2f} s of CPU"
        assert self.wall_s < MAX_WALL_SECONDS, f"{self.wall_s:.2f} s of wall time: a hang?"
        assert self.rss_mb < MAX_RSS_MB, f"peak RSS {self.rss_mb:.0f} MB"


def run_cli(*args: str) -> tuple[int, str, str, Cost]:
    """(exit code, stdout, stderr, cost) of one CLI run."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as result:
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", _LAUNCH, result.name, sys.executable, "-m",
                        "meshproof.cli", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                       stdout=out, stderr=err, preexec_fn=_limit, timeout=60)
        wall = time.monotonic() - start
        code, maxrss_kb, cpu = open(result.name).read().split()
        out.seek(0)
        err.seek(0)
        return (int(code), out.read().decode(errors="replace"),
                err.read().decode(errors="replace"),
                Cost(float(cpu), wall, int(maxrss_kb) / 1024))


REFUSED = refused()
ACCEPTED = accepted()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    for name, text in REFUSED + ACCEPTED:
        data = text.encode("utf-8") if name != "not-utf8" else b"kind: \xff\xfe\n"
        (d / f"{name}.yaml").write_bytes(data)
    return d


@pytest.mark.parametrize("name", [n for n, _ in REFUSED])
def test_hostile_input_is_refused_quickly_and_located(name: str, corpus: Path) -> None:
    path = corpus / f"{name}.yaml"
    code, out, err, cost = run_cli("apply", "--dry-run", "-f", str(path))
    assert code == 2, (out[-500:], err[-2000:])
    assert err.startswith(f"meshproof: {path}: document "), err[:500]
    assert "Traceback" not in err and "hint:" in err
    assert len(err) < 20_000, f"error text of {len(err)} bytes"
    cost.check()


def test_dev_zero_and_a_directory_are_refused_before_reading(tmp_path: Path) -> None:
    for path in ("/dev/zero", str(tmp_path)):
        code, _, err, cost = run_cli("apply", "--dry-run", "-f", path)
        assert code == 2 and err.startswith(f"meshproof: {path}: document 0: "), err
        cost.check()


def test_an_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(40 * 2**20)  # sparse: 40 MB of NULs, no disk used
    code, _, err, cost = run_cli("apply", "--dry-run", "-f", str(big))
    assert code == 2 and "is larger than 32 MiB" in err, err
    cost.check()


@pytest.mark.parametrize("name", [n for n, _ in ACCEPTED])
def test_boundary_input_is_accepted(name: str, corpus: Path) -> None:
    code, out, err, cost = run_cli("apply", "--dry-run", "-f", str(corpus / f"{name}.yaml"))
    assert code == 0, err
    assert "valid, nothing applied" in out
    cost.check()
