"""What a routing table costs a worker process: shipped by the primary, or built from informers.

    .venv/bin/python -m loadtest.bench_worker_table [--objects 2000]

For N HTTPScaledObjects (half bound to HTTPRoutes, bench_routing's objects): the memory of the
parsed objects and of the table built from them (tracemalloc), the time to build it, and the
size and time of the pickle a primary ships to its workers and of unpickling it; then the RSS a
worker process starts from, with the proxy's modules only, and with Kubernetes mode's (the
Kubernetes client, which informers in every worker would need), each in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import subprocess
import sys
import time
import tracemalloc

from loadtest.bench_routing import INTERCEPTOR, http_route, scaled_object
from wakeway.routing import RoutingTable

MIB = 1 << 20


def import_rss(module: str) -> float:
    """RSS (MiB) of a fresh interpreter once it has imported ``module`` (VmRSS: ru_maxrss
    would count the pages of this process, which the child shared until it exec'd)."""
    code = (
        f"import {module}, re; "
        "print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    return int(out.stdout) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=2000)
    args = parser.parse_args()
    if not 1 <= args.objects <= 20000:
        parser.error("--objects: 1..20000")
    n = args.objects
    tracemalloc.start()
    targets = [scaled_object(i, bound=i % 2 == 1) for i in range(n)]
    routes = [http_route(i) for i in range(1, n, 2)]
    gc.collect()
    objects = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    t0 = time.perf_counter()
    table = RoutingTable(targets, routes, INTERCEPTOR)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL)
    pickled = time.perf_counter() - t0
    t0 = time.perf_counter()
    pickle.loads(data)
    unpickled = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()  # its memory, measured apart: tracing slows unpickling severalfold
    shipped = pickle.loads(data)
    gc.collect()
    shipped_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(shipped.targets) == n
    proxy = import_rss("wakeway.interceptor.server")
    kube = import_rss("wakeway.interceptor.kube_mode")
    print(f"{n} HTTPScaledObjects, {len(routes)} HTTPRoutes")
    print(f"  parsed objects            {objects / MIB:7.1f} MiB (what informers would cache)")
    print(f"  build the table           {built * 1000:7.0f} ms (each worker, with informers)")
    print(f"  pickle it                 {pickled * 1000:7.0f} ms, {len(data) / MIB:.2f} MiB")
    print(f"  unpickle it (per worker)  {unpickled * 1000:7.0f} ms")
    print(f"  a shipped table in memory {shipped_bytes / MIB:7.1f} MiB (its targets included)")
    print(f"  worker start, proxy only  {proxy:7.1f} MiB RSS")
    print(f"  worker start, with kube   {kube:7.1f} MiB RSS (+{kube - proxy:.1f} MiB per worker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
