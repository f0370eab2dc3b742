"""``python -m meshproof.toxiproxy -host 127.0.0.1 -port 8474 [-config FILE] [-seed N]``: run the API server.

The flags are toxiproxy-server's (cmd/server/server.go), spelled with one
dash or two, so scripts written for the Go server run this one unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import time
from pathlib import Path

from meshproof.toxiproxy.api import VERSION
from meshproof.toxiproxy.server import ToxiproxyServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m meshproof.toxiproxy", description=__doc__.splitlines()[0])
    parser.add_argument("-host", "--host", default="127.0.0.1", help="API listen address (default 127.0.0.1)")
    parser.add_argument("-port", "--port", type=int, default=8474, help="API port; 0 picks a free one (default 8474)")
    parser.add_argument("-config", "--config", default="", help="JSON file of proxies to create on startup (as POST /populate)")
    parser.add_argument(
        "-seed", "--seed", type=int, default=None, help="seed for toxicity rolls, jitter and slicing (default: the clock)"
    )
    parser.add_argument("-version", "--version", action="store_true", help="print the version and exit")
    return parser


async def _populate_from(server: ToxiproxyServer, path: str) -> None:
    """Go's PopulateConfig: a bad or unreadable file is reported and the server starts anyway."""
    try:
        body = Path(path).read_bytes()
    except OSError as exc:
        print(f"error reading config file {path}: {exc.strerror}", file=sys.stderr)
        return
    resp = await server.api.handle("POST", "/populate", {}, body)
    if resp.status != 201:
        print(f"failed to populate proxies from {path}: {resp.body.decode().strip()}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        print(f"toxiproxy-server version {VERSION}")
        return 0
    random.seed(time.time_ns() if args.seed is None else args.seed)

    async def run() -> None:
        server = ToxiproxyServer(args.host, args.port)
        if args.config:
            await _populate_from(server, args.config)
        try:
            url = await server.start()
        except OSError as exc:
            sys.exit(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; pick another -port (0 = any)")
        # First stdout line is the URL: launchers read it to learn a port-0 choice.
        print(f"toxiproxy API listening on {url}", flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: loop.create_task(server.stop()))
        await server.serve_forever()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
