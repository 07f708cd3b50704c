"""Routing table at scale: lookup latency percentiles and full-rebuild time for N routes.

    .venv/bin/python -m loadtest.bench_routing [--routes 10000] [--lookups 200000]

Three tables of N entries each: HTTPScaledObjects with one host and two path prefixes each;
HTTPRoute rules bound to HTTPScaledObjects (Gateway API precedence, header and method matches);
and both mixed behind a shared wildcard. Lookups are timed one by one with perf_counter_ns
over random requests (hits and misses); the baseline row times a plain dict lookup in the same
loop so the clock's own cost can be read off.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from loadtest.common import percentile
from wakeway.gateway.request import Request
from wakeway.model.httproute import HTTPRoute, parse_httproute
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.routing import InterceptorRef, RoutingTable

INTERCEPTOR = InterceptorRef("wakeway", "wakeway-interceptor", 8080)


def scaled_object(i: int, *, bound: bool = False) -> HTTPScaledObject:
    spec: dict[str, Any] = {"scaleTargetRef": {"service": f"svc-{i}", "port": 8080}}
    if bound:
        spec["routes"] = [{"name": f"route-{i}"}]
    else:
        spec["hosts"] = [f"app-{i}.example.com"]
        spec["pathPrefixes"] = ["/api", f"/v{i % 7}/items"]
    return parse_httpscaledobject(
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": f"so-{i}", "namespace": f"ns-{i % 50}"},
            "spec": spec,
        }
    )


def http_route(i: int) -> HTTPRoute:
    backend = [{"name": INTERCEPTOR.name, "namespace": INTERCEPTOR.namespace, "port": 8080}]
    return parse_httproute(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": f"route-{i}", "namespace": f"ns-{i % 50}"},
            "spec": {
                "hostnames": [f"site-{i}.example.com"],
                "rules": [
                    {
                        "matches": [
                            {"path": {"type": "Exact", "value": "/login"}, "method": "POST"},
                            {
                                "path": {"type": "PathPrefix", "value": "/api"},
                                "headers": [{"name": "x-version", "value": "2"}],
                            },
                        ],
                        "backendRefs": backend,
                    },
                    {"backendRefs": backend},
                ],
            },
        }
    )


def requests(n_entries: int, count: int, host_prefix: str, seed: int) -> list[Request]:
    rng = random.Random(seed)
    paths = ["/", "/api", "/api/users/42", "/v3/items/9", "/login", "/static/app.js", "/nope/x/y"]
    out = []
    for _ in range(count):
        i = rng.randrange(int(n_entries * 1.1))  # about one in eleven hosts is unknown
        headers = {"x-version": "2"} if rng.random() < 0.5 else {}
        method = "POST" if rng.random() < 0.2 else "GET"
        out.append(
            Request(method, f"{host_prefix}-{i}.example.com", rng.choice(paths), "", headers)
        )
    return out


def time_lookups(lookup: Callable[[Request], object], reqs: Sequence[Request]) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    gc.disable()
    try:
        for req in reqs:
            t0 = clock()
            lookup(req)
            samples.append(clock() - t0)
    finally:
        gc.enable()
    return samples


def pct(samples: list[int], q: float) -> float:
    """The ``q`` percentile of nanosecond samples, in microseconds."""
    return percentile(samples, q) / 1000.0


def build_time(build: Callable[[], RoutingTable], repeat: int = 3) -> tuple[float, RoutingTable]:
    best = float("inf")
    table = build()
    for _ in range(repeat):
        t0 = time.perf_counter()
        table = build()
        best = min(best, time.perf_counter() - t0)
    return best, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=10_000)
    ap.add_argument("--lookups", type=int, default=200_000)
    args = ap.parse_args()
    n = args.routes

    t0 = time.perf_counter()
    by_host = [scaled_object(i) for i in range(n)]
    bound = [scaled_object(i, bound=True) for i in range(n)]
    routes = [http_route(i) for i in range(n)]
    parse_s = time.perf_counter() - t0
    wildcard = parse_httpscaledobject(
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": "wild", "namespace": "default"},
            "spec": {"hosts": ["*.example.com"], "scaleTargetRef": {"service": "w", "port": 80}},
        }
    )

    scenarios: list[tuple[str, Callable[[], RoutingTable], str]] = [
        ("HTTPScaledObject hosts", lambda: RoutingTable(by_host), "app"),
        ("HTTPRoute rules", lambda: RoutingTable(bound, routes, INTERCEPTOR), "site"),
        (
            "both + wildcard",
            lambda: RoutingTable([*by_host, *bound, wildcard], routes, INTERCEPTOR),
            "site",
        ),
    ]
    print(f"routing table, {n} entries per source; parsed {3 * n} objects in {parse_s:.2f} s")
    header = (
        f"{'table':<24} {'rebuild s':>9} {'p50 µs':>7} {'p99 µs':>7} {'p99.9 µs':>8} {'hits':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, build, host_prefix in scenarios:
        seconds, table = build_time(build)
        reqs = requests(n, args.lookups, host_prefix, seed=7)
        runs = [time_lookups(table.lookup, reqs) for _ in range(3)]
        p50 = statistics.median(pct(s, 0.50) for s in runs)
        p99 = statistics.median(pct(s, 0.99) for s in runs)
        p999 = statistics.median(pct(s, 0.999) for s in runs)
        hits = sum(table.lookup(r) is not None for r in reqs) / len(reqs)
        print(f"{name:<24} {seconds:>9.3f} {p50:>7.2f} {p99:>7.2f} {p999:>8.2f} {hits:>6.0%}")
    plain: dict[str, int] = {f"app-{i}.example.com": i for i in range(n)}
    reqs = requests(n, args.lookups, "app", seed=7)
    base = [time_lookups(lambda r: plain.get(r.host), reqs) for _ in range(3)]
    print(
        f"{'baseline: dict.get':<24} {'':>9} {statistics.median(pct(s, 0.5) for s in base):>7.2f}"
        f" {statistics.median(pct(s, 0.99) for s in base):>7.2f}"
        f" {statistics.median(pct(s, 0.999) for s in base):>8.2f}"
    )


if __name__ == "__main__":
    main()
