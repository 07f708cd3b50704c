"""Wake latency in standalone mode on a real API server: first held request -> /scale written.

    sudo .venv/bin/python -m loadtest.bench_wake [--wakes 60] [--json FILE]

Brings up the harness cluster (tests/cluster: a real control plane in a network namespace) and,
inside that namespace, one interceptor, the scaler and the operator in standalone mode, each
under its own ServiceAccount and logging JSON. Each wake is a fresh Deployment at zero with its
Service and HTTPScaledObject; once the operator has made it Ready, one request is sent through
the interceptor. The components' structured events give the hops of that wake on one clock
(``time.monotonic()``, shared by every process of the machine):

- interceptor -> scaler: ``cold`` (first request held) to ``wake-seen`` (the count line read);
- scaler -> operator: to ``active`` (StreamIsActive said true);
- operator -> /scale write sent: to the ``sent`` time of ``woken`` (the write is on the wire);
- the write itself: to ``woken`` (the API server answered the conditional JSON patch).

Baseline, in the same run and interleaved with the wakes: the same conditional /scale patch of
another Deployment at zero, sent by this process with the admin's credentials: what writing the
scale alone costs, the floor for any wake chain. Ratios are against its p50.

Goal: wakeway's own share, first held request -> /scale write sent, at most ``--goal-ms``
(10 ms) at p99; the run exits 1 when it is missed. The write's own time is the API server's,
shown beside the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from tests.cluster.harness.binaries import ensure
from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import deployment
from tests.cluster.standalone import (
    Standalone,
    first_routed,
    make_app,
    ready,
    start_standalone,
)

from loadtest.common import dist, format_ratio, free_ports
from wakeway.kube import Kube
from wakeway.kube.resources import DEPLOYMENTS, NAMESPACES

GOAL_HOP = "first held request -> write sent"
GOAL_MS = 10.0
HOPS = (
    ("interceptor -> scaler", "cold", "wake-seen"),
    ("scaler -> operator", "wake-seen", "active"),
    ("operator -> /scale write sent", "active", "sent"),
    ("the write (API server and etcd)", "sent", "woken"),
    (GOAL_HOP, "cold", "sent"),
    ("first held request -> /scale written", "cold", "woken"),
)


def log(message: str) -> None:
    print(f"[bench_wake {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def hops_of(stack: Standalone, key: str) -> dict[str, float]:
    """Milliseconds per hop of the one wake of ``key``, from the components' events."""
    at = stack.wake_hops(key)
    return {label: (at[b] - at[a]) * 1000 for label, a, b in HOPS}


async def baseline_write(kube: Kube, ns: str) -> float:
    """Milliseconds for one conditional 0 -> 1 /scale patch, then back to 0 (not timed)."""
    began = time.monotonic()
    if not await kube.scale_from_zero(DEPLOYMENTS, ns, "floor", 1):
        raise RuntimeError("the baseline Deployment was not at zero")
    took = (time.monotonic() - began) * 1000
    await kube.set_scale(DEPLOYMENTS, ns, "floor", 0)
    return took


async def measure(cluster: Cluster, wakes: int) -> dict[str, list[float]]:
    kube = await Kube.connect(str(cluster.kubeconfig))
    # loopback ports inside the cluster's own namespace, picked there by the OS
    proxy, admin, scaler = cluster.netns.call(lambda: free_ports(3))
    stack = await start_standalone(cluster, "bench-wake", proxy, admin, scaler)
    results: dict[str, list[float]] = {label: [] for label, _, _ in HOPS}
    results["baseline: the /scale patch alone"] = []
    try:
        floor_ns = f"floor-{os.getpid()}"
        await kube.create(NAMESPACES, None, {"metadata": {"name": floor_ns}})
        await kube.create(DEPLOYMENTS, floor_ns, deployment("floor", replicas=0, port=8080))
        for i in range(wakes):
            ns = await make_app(kube, "wake", scaledownPeriod=300)
            await ready(kube, ns, "wake")
            answer = await first_routed(stack, f"wake.{ns}.test")
            if answer.status != 200:
                raise RuntimeError(f"wake {i}: {answer.status} {answer.body[:200]}")
            for label, ms in hops_of(stack, f"{ns}/wake").items():
                results[label].append(ms)
            results["baseline: the /scale patch alone"].append(await baseline_write(kube, floor_ns))
            log(f"wake {i + 1}/{wakes}: {results[HOPS[-1][0]][-1]:.1f} ms")
    finally:
        stack.stop()
        await kube.close()
    return results


def report(results: dict[str, list[float]]) -> str:
    floor = dist(results["baseline: the /scale patch alone"])["p50"]
    lines = [
        f"{'':40} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p50 / floor':>11}",
    ]
    for label, values in results.items():
        d = dist(values)
        lines.append(
            f"{label:40} {d['p50']:8.2f} {d['p90']:8.2f} {d['p99']:8.2f} {d['max']:8.2f}"
            f" {format_ratio(d['p50'], floor):>11}"
        )
    return "\n".join(lines)


def goal_met(results: dict[str, list[float]], goal_ms: float) -> tuple[bool, str]:
    """Whether wakeway's share of a wake is within ``goal_ms`` at p99, and the line saying so."""
    p99 = dist(results[GOAL_HOP])["p99"]
    ok = p99 <= goal_ms  # NaN (no wake measured) is not met
    verdict = "met" if ok else "NOT met"
    return ok, f"goal {verdict}: {GOAL_HOP} p99 {p99:.2f} ms (goal <= {goal_ms:g} ms)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wakes", type=int, default=60)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--goal-ms", type=float, default=GOAL_MS, help="p99 goal of the wake")
    args = parser.parse_args()
    if not 1 <= args.wakes <= 100:
        parser.error("keep it bounded: 1..100 wakes")
    if os.geteuid() != 0:
        parser.error("needs root (the harness makes a network namespace)")
    cluster = Cluster(ensure(), log=log)
    try:
        cluster.start()
        log("cluster up")
        results = asyncio.run(measure(cluster, args.wakes))
    finally:
        cluster.stop()
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    ok, line = goal_met(results, args.goal_ms)
    print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
