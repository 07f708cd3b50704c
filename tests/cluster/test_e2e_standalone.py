"""End to end without KEDA: HTTPScaledObject + Deployment at zero, two interceptors, the
scaler and the operator in standalone mode, each a process under its own ServiceAccount.

Requests go through the interceptors to pods that really answer; the operator scales through
the Deployment's /scale subresource when the scaler's stream says so. Wake latency (first
request -> /scale written) and the cold-start overhead are printed for docs/testing.md.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import Proc, stop
from tests.cluster.helpers import Answer, eventually, http_request
from tests.cluster.standalone import conditions, interceptor_ready, make_app, replicas
from tests.cluster.wakeway_setup import component_kubeconfigs, start_component
from wakeway.kube import Kube
from wakeway.kube.resources import HTTPSCALEDOBJECTS

pytestmark = pytest.mark.cluster

LO = "127.0.0.1"
PROXY = (18281, 18282)
ADMIN = (19281, 19282)
SCALER = 19283


@dataclass
class Stack:
    cluster: Cluster
    procs: dict[str, Proc]
    configs: dict[str, Path]

    def start_interceptor(self, i: int) -> None:
        args = ["interceptor", "--listen", f"{LO}:{PROXY[i]}", "--admin", f"{LO}:{ADMIN[i]}"]
        self.procs[f"interceptor-{i}"] = start_component(
            self.cluster, f"e2e-interceptor-{i}", args, self.configs["interceptor"]
        )


def get(
    cluster: Cluster, host: str, port: int = PROXY[0], timeout: float = 60.0
) -> asyncio.Task[Answer]:
    return http_request(cluster, host, port, timeout=timeout)


async def answers(tasks: list[asyncio.Task[Answer]]) -> list[Answer]:
    return list(await asyncio.gather(*tasks))


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Stack]:
    configs = asyncio.run(component_kubeconfigs(cluster, "interceptor", "scaler", "operator"))
    procs: dict[str, Proc] = {}
    s = Stack(cluster, procs, configs)
    for i in range(len(PROXY)):
        s.start_interceptor(i)
    interceptors = ",".join(f"127.0.0.1:{a}" for a in ADMIN)
    procs["scaler"] = start_component(
        cluster,
        "e2e-scaler",
        ["scaler", "--listen", f"127.0.0.1:{SCALER}", "--interceptors", interceptors],
        None,
        WAKEWAY_SCALER_STALE_AFTER="3",
        WAKEWAY_SCALER_METRICS_PORT="0",
    )
    procs["operator"] = start_component(
        cluster,
        "e2e-operator",
        ["operator"],
        configs["operator"],
        WAKEWAY_OPERATOR_MODE="standalone",
        WAKEWAY_OPERATOR_SCALER_ADDRESS=f"127.0.0.1:{SCALER}",
        WAKEWAY_OPERATOR_HEALTH_PORT="0",
        WAKEWAY_OPERATOR_SCALE_DOWN_STABILIZATION="3",
        WAKEWAY_OPERATOR_METRICS_INTERVAL="0.5",
    )
    try:
        yield s
    finally:
        for proc in reversed(list(procs.values())):
            stop(proc, 5.0)


async def routed(stack: Stack, kube: Kube, ns: str, name: str) -> None:
    """Until the HTTPScaledObject is Ready (the operator saw it) and both interceptors route it,
    without sending it a request (that would wake it).

    A canary HTTPScaledObject is created after it, for a workload that does not exist: the
    operator marks it not Ready, and an interceptor answers its host 503 at once (nothing can
    come) instead of 404 (no route) once its informer has that status. Watch events arrive in
    order, so an interceptor that answers the canary 503 has seen ``name`` too."""

    async def ready(obj: str, status: str) -> bool:
        return (await conditions(kube, ns, obj)).get("Ready") == status

    await eventually(lambda: ready(name, "True"), f"{ns}/{name} to be Ready", within=60)
    canary = {"name": "canary", "service": "canary", "port": 80}
    await kube.create(
        HTTPSCALEDOBJECTS,
        ns,
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": "canary"},
            "spec": {"hosts": [f"canary.{ns}.test"], "scaleTargetRef": canary},
        },
    )
    await eventually(lambda: ready("canary", "False"), f"{ns}/canary to be refused", within=60)

    async def both_route() -> bool:
        probes = [get(stack.cluster, f"canary.{ns}.test", port, timeout=10) for port in PROXY]
        return [a.status for a in await answers(probes)] == [503, 503]

    await eventually(both_route, f"both interceptors to route {ns}", within=30)


async def test_cold_burst_is_woken_served_and_put_back_to_zero(stack: Stack, kube: Kube) -> None:
    # Serves on for a moment after SIGTERM, as Kubernetes asks of workloads: the requests sent
    # right after the scale-down below must not be cut by a pod exiting mid-request (see
    # test_requests_during_scale_down_are_not_lost).
    ns = await make_app(
        kube,
        "burst",
        scaledownPeriod=3,
        replicas={"min": 0, "max": 3},
        annotations={"wakeway.test/shutdown-delay": "1"},
    )
    await routed(stack, kube, ns, "burst")
    host = f"burst.{ns}.test"
    assert await replicas(kube, ns, "burst") == 0

    began = time.monotonic()
    futures = [get(stack.cluster, host) for _ in range(100)]
    woke = await eventually(
        lambda: _at_least(kube, ns, "burst", 1),
        "the Deployment to be woken",
        within=30,
        interval=0.02,
    )
    wake_latency = time.monotonic() - began
    results = await answers(futures)
    assert [a.status for a in results] == [200] * 100, {(a.status, a.body[:80]) for a in results}
    assert all(a.body.startswith("burst-") for a in results)
    assert woke == 1
    ttfb = statistics.median(a.seconds for a in results)
    slowest = max(a.seconds for a in results)
    print(
        f"\nwake latency (first request -> /scale): {wake_latency * 1000:.0f} ms; "
        f"burst of 100: median {ttfb * 1000:.0f} ms, max {slowest * 1000:.0f} ms"
    )

    # Quiet: back to zero after scaledownPeriod.
    quiet = time.monotonic()
    await eventually(lambda: _exactly(kube, ns, "burst", 0), "scale to zero", within=60)
    idle = time.monotonic() - quiet
    print(f"scaled to zero {idle:.1f} s after the last request (scaledownPeriod 3 s)")

    # A request right after scale-down is held and served by the next wake: nothing lost.
    later = await answers([get(stack.cluster, host) for _ in range(10)])
    assert [a.status for a in later] == [200] * 10, [
        (a.status, a.body[:200]) for a in later if a.status != 200
    ]


async def test_requests_during_scale_down_are_not_lost(stack: Stack, kube: Kube) -> None:
    # The workload serves on for a moment after SIGTERM, as Kubernetes asks of workloads (a
    # preStop sleep): one that exits at once can kill a request it already read, which is
    # answered 502 and never replayed (the fault tier's pod-killed case covers that).
    ns = await make_app(
        kube,
        "flap",
        scaledownPeriod=2,
        replicas={"min": 0, "max": 2},
        annotations={"wakeway.test/shutdown-delay": "1"},
    )
    await routed(stack, kube, ns, "flap")
    host = f"flap.{ns}.test"
    futures: list[asyncio.Task[Answer]] = []
    for _ in range(2):
        # Traffic wakes it and keeps it up, then stops; once the operator has written zero
        # replicas (its pod terminating, its endpoint maybe still listed), the next request
        # arrives: it must be served by the pod still draining or held and served by the next
        # wake, not lost.
        for _ in range(5):
            futures.append(get(stack.cluster, host))
            await eventually(lambda: _at_least(kube, ns, "flap", 1), "a wake", within=30)
        await answers(futures)
        await eventually(lambda: _exactly(kube, ns, "flap", 0), "a scale-down", within=30)
    futures.append(get(stack.cluster, host))
    results = await answers(futures)
    assert [a.status for a in results] == [200] * len(results), [
        (a.status, a.body[:200]) for a in results if a.status != 200
    ]


async def test_sustained_concurrency_adds_replicas_then_removes_them(
    stack: Stack, kube: Kube
) -> None:
    ns = await make_app(
        kube,
        "busy",
        scaledownPeriod=3,
        replicas={"min": 0, "max": 4},
        scalingMetric={"concurrency": {"targetValue": 4}},
        annotations={"wakeway.test/response-delay": "1.5"},
    )
    await routed(stack, kube, ns, "busy")
    host = f"busy.{ns}.test"
    # 16 slow requests in flight at once, split over both interceptors: the scaler sums them.
    stop_load = asyncio.Event()
    sent: list[Answer] = []

    async def load() -> None:
        while not stop_load.is_set():
            sent.extend(await answers([get(stack.cluster, host, PROXY[i % 2]) for i in range(16)]))

    loader = asyncio.create_task(load())
    try:
        await eventually(lambda: _at_least(kube, ns, "busy", 3), "3 replicas or more", within=30)
    finally:
        stop_load.set()
        await loader
    assert sent, "no wave finished"
    assert all(a.status == 200 for a in sent), {(a.status, a.body[:80]) for a in sent}
    await eventually(lambda: _exactly(kube, ns, "busy", 0), "scale back to zero", within=90)


async def test_one_interceptor_killed_does_not_stall_the_other(stack: Stack, kube: Kube) -> None:
    ns = await make_app(kube, "survivor", scaledownPeriod=30, replicas={"min": 0, "max": 2})
    await routed(stack, kube, ns, "survivor")
    host = f"survivor.{ns}.test"
    victim = stack.procs["interceptor-0"]
    stop(victim, 2.0)
    assert not victim.alive()
    try:
        # The remaining interceptor still wakes the workload through the scaler and the operator.
        results = await answers([get(stack.cluster, host, port=PROXY[1]) for _ in range(5)])
        assert [a.status for a in results] == [200] * 5
        assert await replicas(kube, ns, "survivor") >= 1
    finally:  # the other tests share the stack: it leaves with both interceptors serving
        stack.start_interceptor(0)

        async def back() -> bool:
            return interceptor_ready(stack.cluster, ADMIN[0])

        await eventually(back, "the restarted interceptor to be ready", within=60)


async def _at_least(kube: Kube, ns: str, name: str, n: int) -> int | None:
    r = await replicas(kube, ns, name)
    return r if r >= n else None


async def _exactly(kube: Kube, ns: str, name: str, n: int) -> bool:
    return await replicas(kube, ns, name) == n
