"""Policy loader throughput and memory, before and after, side by side.

``meshproof apply --dry-run -f FILE`` on files of 1k / 10k / 100k
TrafficSplit documents (about 235 bytes each), run in a fresh process per
measurement with ``wait4``'s peak RSS and wall time. "Before" is another
checkout of the tree (make it with ``git worktree add /tmp/policy-before
REV``); both run with this venv's Python, interleaved, so the figures
compare (machines here drift from minute to minute).

    .venv/bin/python benchmarks/policy_bench.py --before /tmp/policy-before
    .venv/bin/python benchmarks/policy_bench.py --before /tmp/policy-before --sizes 1000,10000

Not a test: nothing is asserted. The pure-Python loader takes minutes at
100k; ``--skip-before-above N`` skips the old code for larger sizes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = """apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata:
  name: split-{i}
  namespace: bookinfo
spec:
  service: svc-{i}
  backends:
  - service: svc-{i}-v1
    weight: 90
  - service: svc-{i}-v2
    weight: 10
"""


def write_corpus(n: int, d: Path) -> Path:
    path = d / f"splits-{n}.yaml"
    path.write_text("---\n".join(DOC.format(i=i) for i in range(n)))
    return path


def run(tree: Path, path: Path) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS MB) of one dry run with ``tree``'s code."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    with open(os.devnull, "wb") as null:
        start = time.monotonic()
        p = subprocess.Popen([sys.executable, "-m", "meshproof.cli", "apply", "--dry-run",
                              "-f", str(path)], cwd=tree, env=env, stdout=null, stderr=null)
        _, status, usage = os.wait4(p.pid, 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - start, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="checkout of the old code")
    ap.add_argument("--after", type=Path, default=ROOT, help="checkout of the new code")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--skip-before-above", type=int, default=10**9)
    args = ap.parse_args()
    print(f"{'docs':>7} {'code':<6} {'exit':>4} {'wall s':>8} {'docs/s':>9} {'peak MB':>8}")
    with tempfile.TemporaryDirectory(prefix="policy-bench-") as tmp:
        for n in (int(x) for x in args.sizes.split(",")):
            path = write_corpus(n, Path(tmp))
            for label, tree in (("before", args.before), ("after", args.after)):
                if label == "before" and n > args.skip_before_above:
                    print(f"{n:>7} {label:<6} skipped")
                    continue
                code, wall, rss = run(tree, path)
                print(f"{n:>7} {label:<6} {code:>4} {wall:>8.2f} {n / wall:>9.0f} {rss:>8.0f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
