"""A small registry used by the refmesh unit and integration tests."""

from __future__ import annotations

from meshproof.targets.model import Pod, Registry, Service, ServiceSpec


def small_registry() -> Registry:
    def svc(ns: str, name: str, vip: str, **sel: str) -> Service:
        return Service(ServiceSpec(ns, name, sel or {"app": name}), vip)

    def pod(ns: str, name: str, wl: str, ip: str, sa: str, meshed: bool = True, **labels: str) -> Pod:
        return Pod(ns, name, wl, ip, labels, sa, meshed, ready=True, proxy_uid=1337)

    return Registry(
        services=[
            svc("bookinfo", "productpage", "198.19.0.10"),
            svc("bookinfo", "reviews", "198.19.0.11"),
            svc("bookinfo", "reviews-v1", "198.19.0.12", app="reviews", version="v1"),
            svc("bookinfo", "reviews-v2", "198.19.0.13", app="reviews", version="v2"),
            svc("outside", "echo", "198.19.0.20"),
        ],
        pods=[
            pod("bookinfo", "productpage-v1-0", "productpage-v1", "198.18.0.10", "productpage",
                app="productpage", version="v1"),
            pod("bookinfo", "reviews-v1-0", "reviews-v1", "198.18.0.11", "reviews", app="reviews", version="v1"),
            pod("bookinfo", "reviews-v2-0", "reviews-v2", "198.18.0.12", "reviews", app="reviews", version="v2"),
            pod("outside", "echo-v1-0", "echo-v1", "198.18.0.20", "echo", meshed=False, app="echo"),
        ],
    )
