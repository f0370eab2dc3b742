"""The hostile-input corpus: each case is a file the loader must refuse (exit 2,
located) or accept (then Envoy must accept what the mesh makes of it).

Generated rather than checked in: an alias bomb is small, but 100,000
documents or a 40 MB file are not. ``refused()`` and ``accepted()`` return
``(name, text)``; the tests run each through the CLI in a subprocess.
"""

from __future__ import annotations

SPLIT = """apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: {name}, namespace: bookinfo}}
spec:
  service: reviews
  backends:
  - {{service: reviews-v1, weight: {w1}}}
  - {{service: reviews-v3, weight: {w2}}}
"""
ROUTE = """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: bookinfo}}
spec:
  parentRefs: [{{name: reviews, port: {pport}}}]
  rules:
  - matches: [{{path: {{type: {ptype}, value: '{path}'}}}}]
    backendRefs: [{{name: reviews-v3, port: {bport}}}]
"""
GROUP = """apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: g, namespace: bookinfo}}
spec:
  matches: [{{name: m, {match}}}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: s, namespace: bookinfo}}
spec:
  service: reviews
  matches: [{{kind: HTTPRouteGroup, name: g}}]
  backends: [{{service: reviews-v3, weight: 1}}]
"""
OUTLIER = """apiVersion: policy.meshproof.dev/v1alpha1
kind: OutlierDetection
metadata: {{name: o, namespace: bookinfo}}
spec: {{service: reviews, consecutive5xx: {n}}}
"""


def _bomb(levels: int = 9, width: int = 10) -> str:
    """A flow list whose items are anchors a0..aN, each ``width`` aliases of the one
    before: a few KB standing for width**levels values."""
    items = ["&a0 [" + ", ".join(["lol"] * width) + "]"]
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


def _bombed(field: str) -> str:
    """A TrafficSplit with the bomb as the value of ``field``."""
    doc = SPLIT.format(name="bomb", w1=1, w2=1)
    if field == "weight":
        return doc.replace("weight: 1}", "weight: " + _bomb() + "}", 1)
    if field == "name":
        return doc.replace("name: bomb", "name: " + _bomb())
    keep = [line for line in doc.splitlines(keepends=True)
            if not line.startswith(field + ":")
            and not (field == "spec" and line.startswith("  "))]  # spec's own lines
    return f"{field}: {_bomb()}\n" + "".join(keep)


def _merge_bomb(levels: int = 30) -> str:
    lines = ["m0: &m0 {k: v}"]
    for i in range(1, levels):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}")
    return "\n".join(lines) + "\n"


RULES = """apiVersion: gateway.networking.k8s.io/{api}
kind: {kind}
metadata: {{name: r, namespace: bookinfo}}
spec:
  parentRefs: [{{name: reviews}}]
  rules:
{rules}"""


def _route(rules: str, kind: str = "HTTPRoute") -> str:
    return RULES.format(api="v1", kind=kind, rules=rules)


def _redirect(body: str) -> str:
    return _route(f"  - filters: [{{type: RequestRedirect, requestRedirect: {body}}}]\n")


def _max_route() -> str:
    """Gateway API's rule and match bounds filled: 16 rules of 64 matches (path, method,
    2 headers, 2 query parameters), every filter, weighted backends with their own
    filters. (More headers per match would pass the loader's own 50,000-value bound
    per document first.)"""
    match = ("{path: {type: PathPrefix, value: /r%d/m%d}, method: GET, headers: ["
             + ", ".join(f"{{name: h{k}, value: v}}" for k in range(2)) + "], queryParams: ["
             + ", ".join(f"{{name: q{k}, value: v}}" for k in range(2)) + "]}")
    mod = "{set: [{name: x-s, value: v}], add: [{name: x-a, value: v}], remove: [x-r]}"
    backends = ", ".join(f"{{name: reviews-v{1 + k % 3}, port: 80, weight: {k + 1}, "
                         f"filters: [{{type: RequestHeaderModifier, requestHeaderModifier: "
                         f"{mod}}}]}}" for k in range(3))
    rules = "".join(
        f"  - name: rule-{i}\n    matches: [" + ", ".join(match % (i, j) for j in range(64))
        + f"]\n    filters: [{{type: RequestHeaderModifier, requestHeaderModifier: {mod}}}, "
        f"{{type: ResponseHeaderModifier, responseHeaderModifier: {mod}}}, "
        f"{{type: URLRewrite, urlRewrite: {{hostname: example.org, path: "
        f"{{type: ReplacePrefixMatch, replacePrefixMatch: /x}}}}}}]\n"
        f"    backendRefs: [{backends}]\n" for i in range(16))
    return _route(rules)


def refused() -> list[tuple[str, str]]:
    """Inputs that must exit 2 with a located message."""
    cases = [
        ("empty", ""),
        ("only-comments", "# nothing\n---\n"),
        ("alias-bomb-kind", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "\n".join(
            f"b{i}: &b{i} [" + ", ".join([f"*{'a' if i == 0 else 'b' + str(i - 1)}"] * 10) + "]"
            for i in range(8)) + "\napiVersion: v1\nkind: *b7\n"),
        ("merge-bomb", _merge_bomb()),
        ("nesting-10000", "[" * 10_000 + "]" * 10_000 + "\n"),
        ("nesting-block-200", "".join(" " * i + "a:\n" for i in range(200)) + " " * 200 + "b\n"),
        ("list-key", "? [a, b]\n: 1\n"),
        ("mapping-key", "? {a: b}\n: 1\n"),
        ("recursive-alias", "a: &x [*x]\n"),
        ("duplicate-key", SPLIT.format(name="s", w1=1, w2=1) + "spec: {}\n"),
        ("huge-int", SPLIT.format(name="s", w1="1" + "0" * 5000, w2=1)),
        ("weight-1e30", SPLIT.format(name="s", w1=10**30, w2=1)),
        ("weight-2-32", SPLIT.format(name="s", w1=2**32, w2=1)),
        ("weight-sum-over-uint32", SPLIT.format(name="s", w1=2**32 - 1, w2=1)),
        ("weight-float", SPLIT.format(name="s", w1="1.0e+30", w2=1)),
        ("outlier-1e20", OUTLIER.format(n=10**20)),
        ("outlier-nan", OUTLIER.format(n=".nan")),
        ("two-splits-one-name", SPLIT.format(name="s", w1=1, w2=1) + "---\n"
         + SPLIT.format(name="s", w1=1, w2=1).replace("service: reviews\n", "service: details\n")
         .replace("reviews-v1", "details").replace("reviews-v3", "ratings")),
        ("header-crlf", GROUP.format(match='headers: {end-user: "a\\r\\nb"}')),
        ("header-nul", GROUP.format(match='headers: {end-user: "a\\0b"}')),
        ("header-regex", GROUP.format(match='headers: {user-agent: ".*Firefox.*"}')),
        ("path-regex-no-slash", GROUP.format(match="pathRegex: 'reviews/.*'")),
        ("path-regex-too-big", GROUP.format(match="pathRegex: '(/a{1000}){5}'")),
        ("path-regex-lookahead", GROUP.format(match="pathRegex: '/(?=a)'")),
        ("parent-port-8080", ROUTE.format(pport=8080, ptype="PathPrefix", path="/", bport=80)),
        ("backend-port-9080", ROUTE.format(pport=80, ptype="PathPrefix", path="/", bport=9080)),
        ("tcproute-gateway", "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\n"
         "metadata: {name: t, namespace: bookinfo}\nspec: {}\n"),
        ("tcproute-port-match", "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\n"
         "metadata: {name: t, namespace: bookinfo}\nspec: {matches: {ports: [1]}}\n"),
        ("udproute-gateway", "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: UDPRoute\n"
         "metadata: {name: t, namespace: bookinfo}\nspec: {}\n"),
        ("binary-tag", "apiVersion: !!binary aGk=\n"),
        ("nul-bytes", "\0" * 1000),
        ("not-utf8", "kind: \xff\xfe\n"),
        ("many-invalid-documents", "kind: X\n---\n" * 200_000),
        # Gateway API routes: every CRD bound, and values no request or Envoy can take.
        ("gamma-rules-10000", _route("  - {backendRefs: [{name: reviews-v1}]}\n" * 10_000)),
        ("gamma-matches-5000", _route("  - matches: [" + ", ".join(
            ["{path: {value: /a}}"] * 5_000) + "]\n")),
        ("gamma-header-sets-1000", _route(
            "  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: ["
            + ", ".join(f"{{name: x-{i}, value: v}}" for i in range(1_000)) + "]}}]\n")),
        ("gamma-query-params-1000", _route("  - matches: [{queryParams: [" + ", ".join(
            f"{{name: q{i}, value: v}}" for i in range(1_000)) + "]}]\n")),
        ("gamma-redirect-port-0", _redirect("{port: 0}")),
        ("gamma-redirect-wildcard-host", _redirect("{hostname: '*.example.org'}")),
        ("gamma-redirect-status-200", _redirect("{statusCode: 200}")),
        ("gamma-redirect-path-crlf", _redirect(
            '{path: {type: ReplaceFullPath, replaceFullPath: "/a\\r\\nb"}}')),
        ("gamma-query-name-space", _route(
            "  - matches: [{queryParams: [{name: 'a b', value: v}]}]\n")),
        ("gamma-header-set-crlf", _route(
            '  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: '
            '{set: [{name: x-a, value: "a\\r\\nb"}]}}]\n')),
        ("gamma-mirror-filter", _route("  - filters: [{type: RequestMirror, requestMirror: "
                                        "{backendRef: {name: reviews-v1}}}]\n")),
        ("grpc-regex-lookahead", _route(
            "  - matches: [{method: {type: RegularExpression, service: '(?=a)x'}}]\n",
            "GRPCRoute")),
        ("grpc-hostnames", _route("  - {backendRefs: [{name: reviews-v1}]}\n", "GRPCRoute")
         .replace("spec:\n", "spec:\n  hostnames: [a.b]\n")),
        ("long-string-everywhere", "apiVersion: " + "v" * 5_000_000 + "\n"),
    ]
    for field in ("apiVersion", "kind", "metadata", "spec", "name", "weight"):
        cases.append((f"alias-bomb-{field}", _bombed(field)))
    return cases


def accepted() -> list[tuple[str, str]]:
    """Inputs at the edge of what is valid: the loader takes them, Envoy must too."""
    long = "/" + "a" * 94
    return [
        ("weight-uint32-max", SPLIT.format(name="s", w1=2**32 - 2, w2=1)),
        ("gamma-exact-95", ROUTE.format(pport=80, ptype="Exact", path=long, bport=80)),
        ("gamma-prefix-95", ROUTE.format(pport=80, ptype="PathPrefix", path=long, bport=80)),
        ("gamma-exact-1024", ROUTE.format(pport=80, ptype="Exact", path="/" + "b" * 1023,
                                          bport=80)),
        ("path-regex-a1000", GROUP.format(match="pathRegex: '/a{1000}'")),
        ("path-regex-unicode-class", GROUP.format(match=r"pathRegex: '/\p{L}+/[[:digit:]]+'")),
        ("header-parentheses", GROUP.format(
            match="headers: {user-agent: 'Mozilla/5.0 (X11; Linux x86_64) +http://x.y'}")),
        ("merge-key", "apiVersion: policy.meshproof.dev/v1alpha1\nkind: OutlierDetection\n"
         "metadata: {name: o, namespace: bookinfo}\nspec:\n"
         "  <<: &defaults {service: reviews, consecutive5xx: 3}\n  consecutive5xx: 4\n"),
        ("outlier-uint32-max", OUTLIER.format(n=2**32 - 1)),
        ("gamma-max-route", _max_route()),
        ("gateway-api-mesh-manifests", _gateway_manifests()),
        ("grpc-route", _route("  - matches: [{method: {service: pkg.Echo, method: Ping}}, "
                              "{method: {service: pkg.Echo}}, {method: {method: Ping}}, "
                              "{method: {type: RegularExpression, method: 'P.*'}}]\n"
                              "    backendRefs: [{name: reviews-v1, weight: 70}, "
                              "{name: reviews-v2, weight: 30}]\n", "GRPCRoute")),
    ]


def _gateway_manifests() -> str:
    """Every Gateway API mesh manifest of fixtures/gateway-api/ as one load (the consumer
    route's namespace exists in the test registry)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "fixtures" / "gateway-api"
    return "---\n".join(p.read_text() for p in sorted(root.rglob("*.yaml")))
