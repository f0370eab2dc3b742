"""``python -m meshproof.targets.kube down``: remove every run's leftovers from the cluster
(what ``meshproof down --target kube`` does once the CLI dispatches to it)."""

from __future__ import annotations

import sys

from meshproof.errors import MeshproofError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["down"]:
        print("usage: python -m meshproof.targets.kube down", file=sys.stderr)
        return 2
    from meshproof.targets.kube.target import down_leftovers

    try:
        removed = down_leftovers()
    except MeshproofError as exc:
        print(f"meshproof: {exc}", file=sys.stderr)
        return 2
    n = sum(len(v) for v in removed.values())
    print("kube down: " + (", ".join(f"{k}: {' '.join(v)}" for k, v in removed.items() if v)
                           if n else "nothing to remove"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
