"""FakeApiServer: a small real HTTP server on 127.0.0.1 that speaks just enough of the
Kubernetes API for the official client (NOT a Kubernetes API server).

It stores objects in memory, answers /version, SelfSubjectAccessReviews (from a
deny list), list/get/create/replace/merge-patch/delete of any kind at its
REST path, a Deployment "controller" that makes pods (ready, or stuck with a
reason and an event), namespace deletion that takes a few polls (Terminating),
pod logs, the istiod service-proxy syncz document, and pods/exec over a
real websocket (v4/v5.channel.k8s.io): the exec runs the command in a local
subprocess, with the order line on its stdin, so the probe's --once mode runs
for real against servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from meshproof import paths

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _match(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k) != v:
                return False
        elif labels.get(term) is None:
            return False
    return True


class FakeApiServer:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (coll, ns, name)
        self.denied: set[tuple[str, str, str]] = set()  # (verb, group, resource[/sub])
        self.requests: list[tuple[str, str]] = []
        self.stuck: dict[str, str] = {}  # workload -> waiting reason (pods never ready)
        self.syncz: Any = None  # None: 503 on the service proxy
        self.syncz_calls = 0
        self.syncz_script: list[Any] = []
        self.terminating_polls = 1
        self.exec_rewrite: Any = None  # fn(command) -> command to run locally
        # fn(command, stdin) -> stdin: the fake's stand-in for cluster DNS (a service
        # name in an order becomes a local server's address)
        self.exec_stdin: Any = None
        self.execs: list[list[str]] = []
        self.exec_pods: list[str] = []  # "ns/pod" of each exec, in order
        #: API groups served beyond the built-in ones: "group/version" -> resource names
        self.api_groups: dict[str, list[str]] = {}
        self.lock = threading.RLock()
        self.rv = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path: str, context: str = "fake") -> str:
        import yaml

        with open(path, "w") as fh:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": context,
                            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                            "users": [{"name": "u", "user": {"token": "fake-token"}}],
                            "contexts": [{"name": context, "context": {
                                "cluster": "fake", "user": "u"}}]}, fh)
        return path

    # ------------------------------------------------------------ state helpers

    def put(self, coll: str, ns: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.rv += 1
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
            obj["metadata"].setdefault("creationTimestamp", f"2026-12-01T00:00:{self.rv:02d}Z")
            self.objects[(coll, ns, obj["metadata"]["name"])] = obj

    def kinds(self, coll: str, ns: str | None = None) -> list[dict[str, Any]]:
        return [o for (c, n, _), o in self.objects.items() if c == coll and (ns is None or n == ns)]

    def add_istiod(self, ready: bool = True, tag: str = "1.24.2") -> None:
        self.put("v1/namespaces", "", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": "istio-system"}})
        self.put("apps/v1/deployments", "istio-system", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": "istio-system",
                         "labels": {"app": "istiod"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "discovery", "image": f"docker.io/istio/pilot:{tag}"}]}}},
            "status": {"readyReplicas": 1 if ready else 0}, "_notready": not ready})

    def _reconcile(self) -> None:
        """The fake controllers: Deployments make pods; Terminating namespaces go."""
        with self.lock:
            for (coll, ns, name), ns_obj in list(self.objects.items()):
                if coll == "v1/namespaces" and ns_obj.get("_terminating") is not None:
                    ns_obj["_terminating"] -= 1
                    if ns_obj["_terminating"] <= 0:
                        for k in [k for k in self.objects if k[1] == name]:
                            del self.objects[k]
                        del self.objects[(coll, ns, name)]
            for dep in self.kinds("apps/v1/deployments"):
                m = dep["metadata"]
                if m["namespace"] == "istio-system":
                    if not dep.get("_notready"):
                        dep["status"] = {"readyReplicas": int(dep["spec"].get("replicas", 1))}
                    continue
                want = int(dep["spec"].get("replicas", 1))
                tmpl = dep["spec"]["template"]
                pods = [p for p in self.kinds("v1/pods", m["namespace"])
                        if p["metadata"].get("_owner") == m["name"]]
                for p in pods[want:]:
                    del self.objects[("v1/pods", m["namespace"], p["metadata"]["name"])]
                for i in range(len(pods), want):
                    self.rv += 1
                    pname = f"{m['name']}-{self.rv:05x}"
                    stuck = self.stuck.get(m["name"])
                    status: dict[str, Any] = {
                        "phase": "Pending" if stuck else "Running",
                        "podIP": f"10.1.{self.rv % 250}.{i + 2}",
                        "conditions": [{"type": "Ready", "status": "False" if stuck else "True"}],
                        "containerStatuses": [{"name": "app", "restartCount": 0, "state": (
                            {"waiting": {"reason": stuck, "message": "back-off pulling image"}}
                            if stuck else {"running": {}})}]}
                    self.put("v1/pods", m["namespace"], {
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pname, "namespace": m["namespace"],
                                     "labels": dict(tmpl["metadata"]["labels"]),
                                     "_owner": m["name"]},
                        "spec": tmpl["spec"], "status": status})
                    if stuck:
                        self.put("v1/events", m["namespace"], {
                            "metadata": {"name": f"{pname}.ev", "namespace": m["namespace"]},
                            "involvedObject": {"name": pname}, "type": "Warning",
                            "reason": "Failed", "message": f"Failed to pull image: {stuck}"})

    # ------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else ~40 ms per call (Nagle + delayed ACK)

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": reason, "message": message, "code": code})

            def _body(self) -> Any:
                if not hasattr(self, "_cached"):
                    n = int(self.headers.get("Content-Length") or 0)
                    self._cached = json.loads(self.rfile.read(n)) if n else None
                return self._cached

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def do_DELETE(self) -> None:
                self._route("DELETE")

            def _route(self, method: str) -> None:
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append((method, url.path))
                if self.headers.get("Authorization") != "Bearer fake-token":
                    return self._status(401, "Unauthorized", "no token")
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    return self._exec(url.path, url.query)
                if hasattr(self, "_cached"):
                    del self._cached
                self._body()  # always drain the request body (keep-alive)
                fake._reconcile()
                if url.path == "/version":
                    return self._send(200, {"major": "1", "minor": "31",
                                            "gitVersion": "v1.31.0-fake"})
                if url.path.endswith("/selfsubjectaccessreviews"):
                    spec = self._body()["spec"]["resourceAttributes"]
                    res = spec["resource"] + (f"/{spec['subresource']}"
                                              if spec.get("subresource") else "")
                    ok = (spec["verb"], spec.get("group", ""), res) not in fake.denied
                    return self._send(201, {"status": {"allowed": ok, "reason": "" if ok
                                                       else "fake RBAC says no"}})
                if "/services/istiod:15014/proxy/debug/syncz" in url.path:
                    fake.syncz_calls += 1
                    doc = fake.syncz_script.pop(0) if fake.syncz_script else fake.syncz
                    if doc is None:
                        return self._status(503, "ServiceUnavailable", "no endpoints")
                    return self._send(200, doc(fake) if callable(doc) else doc)
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                if parts[0] == "api":
                    gv, rest = parts[1], parts[2:]
                elif parts[0] == "apis" and len(parts) == 3:  # discovery of a group version
                    gv = f"{parts[1]}/{parts[2]}"
                    if gv not in fake.api_groups:
                        return self._status(404, "NotFound", url.path)
                    return self._send(200, {"kind": "APIResourceList", "groupVersion": gv,
                                            "resources": [{"name": n, "namespaced": True}
                                                          for n in fake.api_groups[gv]]})
                elif parts[0] == "apis":
                    gv, rest = f"{parts[1]}/{parts[2]}", parts[3:]
                else:
                    return self._status(404, "NotFound", url.path)
                ns = ""
                if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
                    ns, rest = rest[1], rest[2:]
                coll = f"{gv}/{rest[0]}"
                name = rest[1] if len(rest) > 1 else ""
                sub = rest[2] if len(rest) > 2 else ""
                with fake.lock:
                    return self._crud(method, coll, ns, name, sub, q)

            def _crud(self, method: str, coll: str, ns: str, name: str, sub: str,
                      q: dict[str, str]) -> None:
                key = (coll, ns, name)
                if method == "GET" and not name:
                    items = [o for o in fake.kinds(coll, ns if ns or coll != "v1/namespaces"
                                                   and ns else None)
                             if _match(o["metadata"].get("labels") or {},
                                       q.get("labelSelector", ""))]
                    if ns:
                        items = [o for o in items if o["metadata"].get("namespace") == ns]
                    fs = q.get("fieldSelector", "")
                    if fs.startswith("involvedObject.name="):
                        items = [o for o in items if o.get("involvedObject", {}).get("name")
                                 == fs.split("=", 1)[1]]
                    clean = [{k: v for k, v in o.items() if not k.startswith("_")}
                             for o in items]
                    return self._send(200, {"kind": "List", "items": clean})
                if method == "POST":
                    body = self._body()
                    key = (coll, ns, body["metadata"]["name"])
                    if key in fake.objects:
                        return self._status(409, "AlreadyExists",
                                            f"{coll} {body['metadata']['name']} already exists")
                    if ns and ("v1/namespaces", "", ns) not in fake.objects:
                        return self._status(404, "NotFound", f"namespaces {ns} not found")
                    fake.put(coll, ns, body)
                    return self._send(201, body)
                if key not in fake.objects:
                    return self._status(404, "NotFound", f"{coll} {name} not found")
                obj = fake.objects[key]
                if method == "GET" and sub == "log":
                    raw = b"app log line\n"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return None
                if method == "GET":
                    return self._send(200, {k: v for k, v in obj.items()
                                            if not k.startswith("_")})
                if method == "PUT":
                    body = self._body()
                    fake.put(coll, ns, body)
                    return self._send(200, body)
                if method == "PATCH":
                    patch = self._body()
                    target = obj
                    _merge(target, patch)
                    return self._send(200, obj)
                if method == "DELETE":
                    if coll == "v1/namespaces":
                        obj["_terminating"] = fake.terminating_polls
                        obj.setdefault("status", {})["phase"] = "Terminating"
                    else:
                        del fake.objects[key]
                    return self._send(200, {"kind": "Status", "status": "Success"})
                return self._status(405, "MethodNotAllowed", method)

            def _exec(self, path: str, query: str) -> None:
                q = parse_qs(query)
                cmd = q.get("command", [])
                fake.execs.append(cmd)
                where = path.strip("/").split("/")  # api v1 namespaces NS pods NAME exec
                fake.exec_pods.append(f"{where[3]}/{where[5]}" if len(where) > 5 else "")
                key = self.headers["Sec-WebSocket-Key"]
                accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
                proto = self.headers.get("Sec-WebSocket-Protocol", "").split(",")[0].strip()
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.send_header("Sec-WebSocket-Protocol", proto)
                self.end_headers()
                self.wfile.flush()
                stdin = b""
                if q.get("stdin", ["false"])[0] == "true":
                    while b"\n" not in stdin:
                        op, data = _read_frame(self.rfile)
                        if op is None or op == 8:
                            break
                        if data[:1] == b"\x00":
                            stdin += data[1:]
                run = fake.exec_rewrite(cmd) if fake.exec_rewrite else cmd
                if fake.exec_stdin is not None:
                    stdin = fake.exec_stdin(cmd, stdin)
                proc = subprocess.run(run, input=stdin, capture_output=True, timeout=60,
                                      cwd=str(paths.ROOT), env={**os.environ})
                if proc.stdout:
                    _send_frame(self.wfile, b"\x01" + proc.stdout)
                if proc.stderr:
                    _send_frame(self.wfile, b"\x02" + proc.stderr)
                status = ({"status": "Success"} if proc.returncode == 0 else
                          {"status": "Failure", "reason": "NonZeroExitCode", "details": {
                              "causes": [{"reason": "ExitCode",
                                          "message": str(proc.returncode)}]}})
                _send_frame(self.wfile, b"\x03" + json.dumps(status).encode())
                _send_frame(self.wfile, b"", opcode=8)
                self.close_connection = True

        return H


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = v


def _read_frame(rfile: Any) -> tuple[int | None, bytes]:
    head = rfile.read(2)
    if len(head) < 2:
        return None, b""
    op, ln = head[0] & 0x0F, head[1] & 0x7F
    if ln == 126:
        ln = struct.unpack(">H", rfile.read(2))[0]
    elif ln == 127:
        ln = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(rfile.read(ln)))
    return op, data


def _send_frame(wfile: Any, data: bytes, opcode: int = 2) -> None:
    n = len(data)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    wfile.write(head + data)
    wfile.flush()
