"""Runs inside a private network namespace (``unshare --net``): the data plane of an e2e test.

Why: the outbound path (iptables capture -> virtualOutbound -> VIP listener ->
split -> upstream mTLS -> the server's inbound capture) needs nat rules, and
those must never touch the host's namespace. A private netns vanishes with
this process, so nothing can leak. Control traffic (ADS, SDS, admin) still
crosses over Unix sockets, which ignore network namespaces.

Usage: ``unshare --net python netns_driver.py SPEC.json``; then one JSON
request per stdin line ``{"url": ..., "n": N}`` -> one JSON line of
results ``[{"status": 200, "body": {...}} | {"error": "..."}]``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def app(port: int, name: str) -> None:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            body = json.dumps({"name": name,
                               "xfcc": self.headers.get("x-forwarded-client-cert", "")}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for r in spec.get("routes", []):
        subprocess.run(["ip", "route", "add", *r.split()], check=True)
    for rule in spec.get("rules", []):
        subprocess.run(["iptables", "-t", "nat", "-A", *rule.split()], check=True)
    for a in spec.get("apps", []):
        app(a["port"], a["name"])
    children = [subprocess.Popen(e["argv"], stdout=open(e["log"], "wb"), stderr=subprocess.STDOUT)
                for e in spec.get("envoys", [])]

    def stop(*_: object) -> None:
        for c in children:
            c.terminate()
        for c in children:
            try:
                c.wait(5)
            except subprocess.TimeoutExpired:
                c.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        out = []
        for _ in range(int(req.get("n", 1))):
            try:
                with urllib.request.urlopen(req["url"], timeout=5) as r:  # fresh connection each time
                    out.append({"status": r.status, "body": json.loads(r.read())})
            except urllib.error.HTTPError as e:
                out.append({"status": e.code, "body": e.read().decode(errors="replace")})
            except OSError as e:
                out.append({"error": str(e)})
        print(json.dumps(out), flush=True)
    stop()


if __name__ == "__main__":
    main()
