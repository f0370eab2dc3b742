"""``python -m meshproof.load``: bring up the load lab, measure, report, gate.

Exit codes: 0 done (a flagged run is printed as such), 1 the gate failed
(a percentile regressed, or the run is not valid), 2 usage / lab errors.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from meshproof.errors import MeshproofError
from meshproof.load import gate, plots, report
from meshproof.load.session import LoadSession
from meshproof.load.settings import LoadSettings, with_overrides
from meshproof.load.topology import MAX_CLIENTS

WAIT_FOR_LAB_S = 300.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m meshproof.load", description=__doc__)
    ap.add_argument("--target", default="local",
                    help="where the twins run: local (the netns lab) or kube (a cluster, "
                         "see docs/kube.md); default local")
    ap.add_argument("--mesh", default="reference",
                    help="the mesh under test (reference, istio on --target kube, ...)")
    ap.add_argument("--clients", type=int, default=1,
                    help="client pods (one generator each) per path, sharing the rate; "
                         "their HDR histograms are merged (default 1)")
    ap.add_argument("--scenario", action="append", choices=["single-hop", "productpage"],
                    help="repeatable; default: both")
    ap.add_argument("--rate", type=float, help="requests/s (default 1000 single-hop, 200 page)")
    ap.add_argument("--duration", type=float, help="seconds per path per round")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--connections", type=int)
    ap.add_argument("--payload", type=int, help="request body bytes (POST); 0: GET")
    ap.add_argument("--warmup", type=float, dest="warmup_s")
    ap.add_argument("--floor", type=float, dest="floor_s", help="floor phase seconds; 0: skip")
    ap.add_argument("--pin-cpu", type=int, dest="pin_cpu")
    ap.add_argument("--no-realtime", action="store_true",
                    help="leave the load lab's pods in the normal scheduling class (nice only)")
    ap.add_argument("--nice", type=int, default=None,
                    help="nice of the load lab's pod processes while measuring (default -10; "
                    "0 leaves them as they are)")
    ap.add_argument("--defect", default="", help="bring the mesh up with this defect")
    ap.add_argument("--baseline", type=Path, help="a previous report: gate against it")
    ap.add_argument("--out", type=Path, default=Path("reports/load"))
    ap.add_argument("--wait", type=float, default=WAIT_FOR_LAB_S,
                    help="seconds to wait for someone else's lab to go away (local)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        settings = with_overrides(
            LoadSettings(), scenarios=args.scenario, rate=args.rate,
            duration_s=args.duration, rounds=args.rounds, connections=args.connections,
            payload=args.payload, warmup_s=args.warmup_s, floor_s=args.floor_s,
            pin_cpu=args.pin_cpu, nice=args.nice,
            realtime=False if args.no_realtime else None)
        baseline = report.load(args.baseline) if args.baseline else None
        if not 1 <= args.clients <= MAX_CLIENTS:
            raise ValueError(f"--clients 1..{MAX_CLIENTS}, not {args.clients}")
    except (MeshproofError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"load: about {settings.estimate_s() / 60:.1f} min of measuring", flush=True)
    command = "python -m meshproof.load " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        with LoadSession(defect=args.defect, wait_s=args.wait, target=args.target,
                         mesh=args.mesh, clients=args.clients) as session:
            doc = session.measure(settings, command)
    except MeshproofError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; everything the run made was removed", file=sys.stderr)
        return 2
    stem = time.strftime("load-%Y%m%d-%H%M%S")
    path = report.write(doc, args.out, stem)
    pngs = plots.write_all(doc, args.out, stem)
    print(report.table(doc))
    print(f"report: {path}\nplots: {', '.join(str(p) for p in pngs)}")
    if baseline is None:
        return 0
    if baseline.get("target", "local") != doc["target"]:
        print(f"error: the baseline was measured on target {baseline.get('target', 'local')!r}"
              f", this run on {doc['target']!r}: added latency from different places does "
              "not compare; gate against a baseline from the same target", file=sys.stderr)
        return 2
    code, lines = gate.judge(baseline, doc)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
