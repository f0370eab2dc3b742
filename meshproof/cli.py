"""The ``meshproof`` command: run the suite, bring a target up and down, probe, diff.

Errors a user can act on print what is wrong and what to do, and exit 2;
nothing is left half-made (``up`` checks its arguments before it creates
anything and rolls back on failure and on Ctrl-C). Targets and meshes are
the registry's (``meshproof.registry``). ``meshproof conformance`` keeps the
suite's exit codes for CI (0 passed, 1 a check failed, 2 could not run),
which ``make`` cannot (it turns every failure into its own 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from meshproof import __version__, paths, registry
from meshproof.errors import ConfigError, MeshproofError
from meshproof.targets.model import APP_PROTOCOLS, ProbeResult

#: ``up --reviews-replicas`` bounds: each replica is a pod with a sidecar.
MAX_REVIEWS_REPLICAS = 20


def _progress_bar() -> tuple[Any, Any]:
    """A live progress display (rich) and the callback that feeds it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]up[/]"), BarColumn(), TextColumn("{task.completed}/"
                   "{task.total}"), TimeElapsedColumn(), TextColumn("{task.description}"),
                   transient=False)
    task = bar.add_task("starting", total=1)

    def update(msg: str, done: int, total: int) -> None:
        bar.update(task, description=msg, completed=done, total=total)

    return bar, update


def check_up_args(args: argparse.Namespace) -> None:
    """Every argument of ``up``, checked before anything is created."""
    entry = registry.mesh_entry(args.mesh, registry.target_entry(args.target).name)
    registry.check_defect(entry, args.defect)
    if not 1 <= args.reviews_replicas <= MAX_REVIEWS_REPLICAS:
        raise ConfigError(f"--reviews-replicas {args.reviews_replicas} is out of range",
                          f"give 1..{MAX_REVIEWS_REPLICAS}")


def cmd_up(args: argparse.Namespace) -> int:
    check_up_args(args)
    bar, update = _progress_bar()
    with bar:
        target = registry.start_target(args.target, args.mesh, args.defect,
                                       reviews_replicas=args.reviews_replicas,
                                       progress=update, detached=True)
    pods = target.pods()
    print(f"lab up: {len(pods)} pods, mesh={args.mesh}"
          + (f", defect={args.defect}" if args.defect else "")
          + ". Try: meshproof probe bookinfo/client-0 http://productpage/")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    _check_target(args.target)
    if args.target == "kube":  # every run's leftovers in the cluster, by run label
        from meshproof.targets.kube.__main__ import main as kube

        return kube(["down"])
    from meshproof.targets.local import cleanup
    from meshproof.targets.local.client import stop_lab

    removed = stop_lab()
    left = {k: v for k, v in cleanup.leftovers().items() if v}
    n = cleanup.count(removed)
    if n:
        print(f"lab down: removed {len(removed['netns'])} netns, {len(removed['processes'])} "
              f"processes, {n} resources in all")
    else:
        print("lab down: nothing to remove (no lab and no leftovers)")
    if left:
        print("meshproof: could not remove "
              + ", ".join(f"{k}: {' '.join(v)}" for k, v in left.items())
              + "\n  hint: run 'meshproof down' again; its log names what failed",
              file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    _check_target(args.target)
    from meshproof.targets.local import cleanup, lock
    from meshproof.targets.local.client import LocalTarget

    if LocalTarget.running():
        try:
            t = LocalTarget.attach()
            info = t.info()
            ready = info.get("phase", "ready") == "ready"
            pods, services = (t.pods(), t.services()) if ready else ([], [])
        except (MeshproofError, OSError):
            ready = False  # it began its teardown (or went away) while we asked
        if ready:
            print(f"lab running (pid {info['pid']}), mesh={info['mesh']}"
                  + (f", defect={info['defect']}" if info["defect"] else "")
                  + (f", dies with pid {info['owner_pid']}" if info.get("owner_pid") else ""))
            for p in pods:
                print(f"  {p.key:<32} {p.ip:<15} {'ready' if p.ready else 'NOT READY'}"
                      f"{'  meshed' if p.meshed else ''}")
            for s in services:
                print(f"  svc {s.key:<28} {s.vip}:{s.port} -> {len(s.endpoints)} endpoint(s)")
            return 0
    state = lock.holder_state()  # a living lab says its phase there, socket or not
    if state is not None:
        pid, phase = state
        who = f"pid {pid}" if pid > 0 else "pid unknown"
        if phase == "stopping":
            print(f"a lab is stopping ({who}): it removes everything it made")
        elif phase == "ready":
            print(f"a lab is running ({who}) but does not answer on its socket")
        else:
            print(f"a lab is starting ({who}): 'meshproof status' again shows it once up")
        return 0
    left = {k: v for k, v in cleanup.leftovers().items() if v}
    if left:
        print("no lab running, but a killed run left things behind (run 'meshproof down'):")
        for k, v in left.items():
            print(f"  {k}: {len(v)}")
        return 1
    print("no lab running")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from meshproof.targets.local.client import LocalTarget

    order: dict[str, Any] = {"url": args.url, "count": args.count,
                             "concurrency": args.concurrency, "fresh": not args.pooled,
                             "protocol": args.protocol, "body": args.body,
                             "stream_count": args.stream}
    if args.header:
        order["headers"] = dict(h.split(":", 1) for h in args.header)
    res = LocalTarget.attach().probe_raw(args.pod, order, in_sidecar=args.as_proxy_uid)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    by: dict[str, int] = {}
    results = [ProbeResult.from_wire(r) for r in res["results"]]
    for got in results:
        k = (f"{got.outcome} {got.pod}" if got.status or got.ok else f"error:{got.error}")
        by[k] = by.get(k, 0) + 1
    for k, n in sorted(by.items()):
        print(f"{n:6d}  {k}")
    # Exit 0 when every request got an answer (an HTTP status, or a TCP echo).
    return 0 if all(r.status or r.ok for r in results) else 1


def cmd_diff(args: argparse.Namespace) -> int:
    from meshproof.report.diff import diff_reports, load_report

    changes = diff_reports(load_report(args.before), load_report(args.after))
    for line in changes:
        print(line)
    if not changes:
        print("no change")
    return 1 if changes else 0


def _load_policy(files: list[str]) -> Any:
    """Load policy files, or raise before touching the lab (all or nothing)."""
    from meshproof.policy import load_files

    return load_files(files)


def _policy_mesh(files: list[str]) -> tuple[Any, Any]:
    """The running lab's reference-mesh adapter, and the files' intents checked against
    what runs there (the reference mesh is the one whose policy files these are)."""
    from meshproof.mesh.reference import ReferenceMesh
    from meshproof.policy import load_files
    from meshproof.policy.registry import registry_of
    from meshproof.targets.local.client import LocalTarget

    target = LocalTarget.attach()
    if target.info().get("mesh") != "reference":
        raise MeshproofError("the lab runs without a mesh: there is nothing to apply policy to",
                             "start it with 'meshproof up --mesh reference'")
    intents = load_files(files, registry=registry_of(target))
    return ReferenceMesh(target), intents


def cmd_apply(args: argparse.Namespace) -> int:
    intents = _load_policy(args.file)
    if args.dry_run:
        for intent in intents:
            print(json.dumps(intent.to_dict()))
        print(f"{len(intents)} intent(s) from {len(args.file)} file(s): valid, nothing applied")
        return 0
    mesh, intents = _policy_mesh(args.file)
    token = mesh.apply_all(intents)
    took = mesh.wait_programmed(token)
    print(f"applied {len(intents)} intent(s) as version {token.value}; programmed in "
          f"{took:.2f} s")
    from meshproof.policy.advice import unenforced_rules

    for rule in unenforced_rules(mesh.policy):
        print(f"note: {rule.name} has no effect until an AccessMode 'smi' covers "
              f"namespace {rule.destination.split('/')[0]} (everything is allowed there now)")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    _load_policy(args.file)
    mesh, intents = _policy_mesh(args.file)
    token = None
    for intent in intents:  # the adapter removes one intent per version
        token = mesh.remove(intent)
    if token is not None:
        mesh.wait_programmed(token)
    print(f"removed {len(intents)} intent(s)" + (f"; version {token.value} programmed"
                                                  if token is not None else ""))
    return 0


def _check_target(target: str) -> None:
    registry.target_entry(target)


#: pytest's exit codes -> the suite's (0 passed, 1 a check failed, 2 could not run).
PYTEST_EXIT = {0: 0, 1: 1}


def conformance_argv(args: argparse.Namespace) -> list[str]:
    reports = Path(args.reports)
    argv = [str(paths.ROOT / "conformance"), "-p", "no:cacheprovider",
            "--target", args.target, "--mesh", args.mesh,
            f"--junitxml={reports / 'junit.xml'}",
            f"--alluredir={reports / 'allure-results'}", "--clean-alluredir",
            "--conformance-report", str(reports / "conformance-report.yaml")]
    if args.defect:
        argv += ["--mesh-defect", args.defect]
    if args.tests:
        argv += ["-k", args.tests]
    return argv + list(args.pytest_args)


def cmd_mesh_status(args: argparse.Namespace) -> int:
    """Per sidecar and xDS type, what the reference control plane sent and what was ACKed
    (as ``istioctl proxy-status``): exit 0 every sidecar in sync with the current
    version, 1 some are not (stale, NACKed, not sent), 2 no control plane to ask."""
    from meshproof.mesh.reference import ControlPlaneClient

    doc = ControlPlaneClient().request("GET", "/debug/syncz")
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    rows: dict[str, dict[str, str]] = {}
    connected: dict[str, bool] = {}
    for r in doc["sidecars"]:
        word = r["state"]
        if word == "NACK":
            word = f"NACK {r['sent']}: {str(r['nack'])[:60]}"
        elif word == "STALE":
            word = f"STALE (sent {r['sent']}, acked {r['acked']})"
        rows.setdefault(r["node"], {})[r["type"]] = word
        connected[r["node"]] = r["connected"]
    synced = all(w == "SYNCED" for cells in rows.values() for w in cells.values()) and \
        all(connected.values())
    if not args.json:
        types = ("cds", "eds", "lds", "rds")
        print(f"{'SIDECAR':<34} " + " ".join(f"{t.upper():<10}" for t in types))
        for node, cells in rows.items():
            line = " ".join(f"{cells.get(t, '-'):<10}" for t in types)
            print(f"{node:<34} {line}{'' if connected[node] else '  (disconnected)'}")
        print(f"version {doc['version']}: {len(rows)} sidecar(s), "
              + ("all in sync" if synced else "NOT all in sync"))
    return 0 if synced else 1


def cmd_conformance(args: argparse.Namespace) -> int:
    """The suite, with reports; exit 0 / 1 / 2 whatever pytest's own code was. Names are
    checked by the plugin (pytest exits 2 on an unknown one), so plugins given with
    ``-- -p MODULE`` can register targets and meshes of their own."""
    import pytest

    Path(args.reports).mkdir(parents=True, exist_ok=True)
    code = int(pytest.main(conformance_argv(args)))
    return PYTEST_EXIT.get(code, 2)


def cmd_chaos(args: argparse.Namespace) -> int:
    """The chaos experiments (chaos/experiments/) with journals; exit 0 / 1 / 2."""
    from meshproof.chaos.suite import main_args

    return main_args(args)


def _run_options(p: argparse.ArgumentParser, targets: str, meshes: str, tests: str) -> None:
    """What a suite run takes (conformance and chaos alike), as make passes it."""
    p.add_argument("--target", default="local", help=f"one of: {targets}")
    p.add_argument("--mesh", default="reference", help=f"one of: {meshes}")
    p.add_argument("--defect", default="", help="a defect ID (negative control)")
    p.add_argument("--tests", default="", help=tests)
    p.add_argument("--reports", default=str(paths.REPORTS), help="report directory")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="meshproof", description=(
        "Prove, with evidence, that a service mesh does what it promises."))
    ap.add_argument("--version", action="version", version=f"meshproof {__version__}")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND", required=True)
    targets, meshes = ", ".join(registry.TARGETS), ", ".join(registry.MESHES)
    cf = sub.add_parser("conformance", help="run the conformance suite with reports "
                        "(exit 0 passed, 1 a check failed, 2 could not run)")
    _run_options(cf, targets, meshes, tests="a pytest -k filter")
    cf.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    cf.set_defaults(fn=cmd_conformance)
    ch = sub.add_parser("chaos", help="run the chaos experiments with journals "
                        "(exit 0 passed, 1 an experiment failed, 2 could not run)")
    _run_options(ch, targets, meshes, tests="experiment names (substrings, comma-separated)")
    ch.add_argument("--allow-component-outage", action="store_true",
                    help="on a target other than local, also run experiments that stop mesh "
                    "components (control plane, CA, sidecars)")
    ch.add_argument("--fail-fast", action="store_true",
                    help="stop an experiment's method at its first deviation (rollbacks "
                    "still run); for negative controls, whose verdict is settled by then")
    ch.set_defaults(fn=cmd_chaos)
    up = sub.add_parser("up", help="bring up the fixture topology (and a mesh)")
    up.add_argument("--target", default="local", help=f"one of: {targets}")
    up.add_argument("--mesh", default="none", help=f"one of: {meshes}")
    up.add_argument("--defect", default="", help="a defect ID (negative control)")
    up.add_argument("--reviews-replicas", type=int, default=1,
                    help=f"pods per reviews version, 1..{MAX_REVIEWS_REPLICAS}")
    up.set_defaults(fn=cmd_up)
    down = sub.add_parser("down", help="remove the lab and any leftovers of a killed run")
    down.add_argument("--target", default="local", help=f"one of: {targets}")
    down.set_defaults(fn=cmd_down)
    st = sub.add_parser("status", help="what runs now")
    st.add_argument("--target", default="local", help=f"one of: {targets}")
    st.set_defaults(fn=cmd_status)
    me = sub.add_parser("mesh", help="the reference mesh's own view")
    mesh_sub = me.add_subparsers(dest="mesh_cmd", metavar="MESH_COMMAND", required=True)
    ms = mesh_sub.add_parser("status", help="per sidecar and xDS type: sent, ACKed, NACK "
                             "(exit 0 all in sync, 1 not, 2 no control plane)")
    ms.add_argument("--json", action="store_true", help="the control plane's /debug/syncz")
    ms.set_defaults(fn=cmd_mesh_status)
    pr = sub.add_parser("probe", help="send requests from a pod")
    pr.add_argument("pod", help="source pod, e.g. bookinfo/client-0")
    pr.add_argument("url", help="e.g. http://productpage/")
    pr.add_argument("-n", "--count", type=int, default=1)
    pr.add_argument("-c", "--concurrency", type=int, default=1)
    pr.add_argument("-H", "--header", action="append", default=[], help="name:value")
    pr.add_argument("--pooled", action="store_true", help="reuse connections")
    pr.add_argument("--protocol", default="http", choices=APP_PROTOCOLS,
                    help="http (HTTP/1.1), http2 (h2c; h2 on https://), grpc (the URL's "
                         "path is the method), tcp (tcp://host:port: banner and echo)")
    pr.add_argument("--body", default="", help="request body / gRPC message / TCP payload")
    pr.add_argument("--stream", type=int, default=0, metavar="N",
                    help="gRPC server stream: ask for N messages")
    pr.add_argument("--as-proxy-uid", action="store_true",
                    help="send as the pod's proxy uid (bypasses capture)")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(fn=cmd_probe)
    df = sub.add_parser("diff", help="what changed between two conformance reports "
                        "(exit 0 same, 1 changed, 2 error)")
    df.add_argument("before")
    df.add_argument("after")
    df.set_defaults(fn=cmd_diff)
    for name, fn, what in (("apply", cmd_apply, "apply policy files (SMI, GAMMA, meshproof "
                            "kinds) to the running mesh, all or nothing"),
                           ("delete", cmd_delete, "remove what policy files set")):
        pp = sub.add_parser(name, help=what)
        pp.add_argument("-f", "--file", action="append", required=True,
                        help="a policy YAML file (repeat for several; loaded as one set)")
        if name == "apply":
            pp.add_argument("--dry-run", action="store_true",
                            help="validate and print the intents; touch no lab")
        pp.set_defaults(fn=fn)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except MeshproofError as exc:
        print(f"meshproof: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("meshproof: interrupted; everything it made was removed", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `meshproof status | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
