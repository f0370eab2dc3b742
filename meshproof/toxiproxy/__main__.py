"""``python -m meshproof.toxiproxy --host 127.0.0.1 --port 8474``: run the API server."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from meshproof.toxiproxy.server import ToxiproxyServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshproof.toxiproxy", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="API listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8474, help="API port; 0 picks a free one (default 8474)")
    args = parser.parse_args(argv)

    async def run() -> None:
        server = ToxiproxyServer(args.host, args.port)
        try:
            url = await server.start()
        except OSError as exc:
            sys.exit(f"cannot listen on {args.host}:{args.port}: {exc.strerror}; pick another --port (0 = any)")
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
