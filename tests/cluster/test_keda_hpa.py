"""Interop tier: KEDA's HPA scales 1 -> N -> 1 on wakeway's metrics, KEDA scales 0 <-> 1.

The stack (tests/interop/stack.py) runs wakeway's interceptor, scaler and operator (KEDA mode),
KEDA's operator and KEDA's metrics API server behind the API server's aggregation layer; the
harness runs the HPA controller (sync every 1 s, downscale stabilization 5 s). So the path of a
metric is wakeway's interceptor -> scaler GetMetrics -> KEDA operator -> keda-adapter ->
``external.metrics.k8s.io`` -> the HPA controller -> the Deployment's /scale.

Each test has its own workload, HTTPScaledObject and host, and sends bounded traffic from inside
the harness's network namespace. KEDA's ``pollingInterval`` (how often it checks activity; 30 s
by default, which wakeway leaves to the user) is set to 2 s on each generated ScaledObject, so a
scaler that answered idle under load would be caught while the traffic runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import HPA_DOWNSCALE_STABILIZATION, Cluster
from tests.cluster.helpers import eventually
from tests.interop.hpa import HpaStatus, ReplicaLog, keda_hpa
from tests.interop.keda import condition
from tests.interop.load import Load, Tally, sustain
from tests.interop.stack import KedaStack, Ports, deployment_at_zero, keda_stack
from wakeway.kube import Kube, NotFound
from wakeway.kube.resources import HTTPSCALEDOBJECTS, SCALEDOBJECTS

pytestmark = pytest.mark.interop

PORTS = Ports.block(29700)
POLLING = 2  # the ScaledObjects' pollingInterval, seconds
STABILIZATION = float(HPA_DOWNSCALE_STABILIZATION.removesuffix("s"))
# Long enough for the HPA to be back at one replica before KEDA takes the workload to zero:
# the concurrency average (10 s window) or the request rate (10 s window here) decays first,
# then the stabilization window passes.
COOLDOWN_1_TO_N = 20
HOLD = 6  # seconds of steady traffic at the peak, through several HPA syncs


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[KedaStack]:
    with keda_stack(cluster, PORTS, "kedahpa") as s:
        yield s


def host(name: str) -> str:
    return f"{name}.hpa.example.com"


async def workload(
    kube: Kube,
    ns: str,
    name: str,
    *,
    metric: dict[str, Any],
    cooldown: int,
    max_replicas: int,
    response_delay: float = 0.0,
) -> str:
    """A Deployment at zero, its Service and an HTTPScaledObject; returns, once KEDA has the
    generated ScaledObject Ready with POLLING set and its HPA exists, wakeway's metric name."""
    annotations = {"wakeway.test/response-delay": str(response_delay)} if response_delay else {}
    await deployment_at_zero(kube, ns, name, annotations)
    httpso = {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name},
        "spec": {
            "hosts": [host(name)],
            "scaleTargetRef": {"name": name, "service": name, "port": 80},
            "replicas": {"min": 0, "max": max_replicas},
            "scalingMetric": metric,
            "scaledownPeriod": cooldown,
            "timeouts": {"conditionWait": "60s"},
        },
    }
    await kube.create(HTTPSCALEDOBJECTS, ns, httpso)

    async def generated() -> dict[str, Any] | None:
        try:
            return await kube.get(SCALEDOBJECTS, ns, name)
        except NotFound:
            return None

    await eventually(generated, f"wakeway's operator to create ScaledObject {name}", within=30)
    await kube.merge_patch(SCALEDOBJECTS, ns, name, {"spec": {"pollingInterval": POLLING}})

    async def ready() -> bool:
        so = await kube.get(SCALEDOBJECTS, ns, name)
        return condition(so, "Ready") == "True" and so["spec"].get("pollingInterval") == POLLING

    await eventually(ready, f"KEDA to mark ScaledObject {name} Ready", within=60)

    async def hpa() -> HpaStatus | None:
        try:
            return await keda_hpa(kube, ns, name)
        except NotFound:
            return None

    await eventually(hpa, f"KEDA to create keda-hpa-{name}", within=30)
    (kind,) = metric
    return f"http-{ns}-{name}-{kind.lower()}"


async def holds(check: Callable[[], Awaitable[object | None]], what: str, seconds: float) -> None:
    """Polls ``check`` for ``seconds``; fails the first time it returns None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = await check()
        assert result is not None, f"expected {what}"
        await asyncio.sleep(0.5)


async def until_zero(log: ReplicaLog, cooldown: int) -> None:
    """Waits for KEDA to scale to zero. It does once a check finds the workload inactive and
    ``cooldown`` has passed since the last check that found it active: at least cooldown after
    that check, which may be up to a polling interval before the last request ended."""

    async def at_zero() -> bool:
        return log.now == 0

    await eventually(at_zero, "KEDA to scale to zero", within=cooldown + POLLING + 30)


def assert_all_answered(tally: Tally) -> None:
    assert tally.sent > 0
    assert not tally.errors, tally.errors[:5]
    assert dict(tally.statuses) == {200: tally.sent}, tally.statuses


def tap_calls(stack: KedaStack, name: str, method: str, since: float, until: float) -> list[Any]:
    """The tap's answered calls (and stream messages) of ``method`` for ``name`` in a time span."""
    return [
        e
        for e in stack.tap_events()
        if e["method"] == method
        and e["request"].get("name") == name
        and since <= e["t"] <= until
        and "response" in e
    ]


async def scale_up_and_back(
    stack: KedaStack,
    kube: Kube,
    name: str,
    load: Load,
    metric_name: str,
    *,
    peak: int,
    expected_total: tuple[float, float],
) -> None:
    """Traffic until the HPA holds ``peak`` replicas on a metric within ``expected_total``;
    then quiet: back to one replica, and to zero after the cooldown. Prints the HPA's status."""
    ns = stack.namespace
    async with ReplicaLog(kube, ns, name) as log:
        traffic = asyncio.create_task(sustain(stack.cluster, load))
        try:

            async def at_peak() -> HpaStatus | None:
                if traffic.done():
                    raise AssertionError(f"the traffic ended first: {traffic.result()}")
                hpa = await keda_hpa(kube, ns, name)
                ok = hpa.desired == peak == hpa.current and log.now == peak
                return hpa if ok else None

            up = await eventually(at_peak, f"the HPA to hold {peak} replicas", within=60)
            print(f"\n{name} under load, HPA status: {up}")
            await holds(at_peak, f"the HPA to stay at {peak} under steady load", HOLD)
        finally:
            load.stop.set()
            tally = await traffic
        stopped = time.time()
        print(f"{name} traffic: {dict(tally.statuses)} in {tally.ended - tally.began:.1f} s")
        assert_all_answered(tally)
        # The HPA read wakeway's metric, under KEDA's name for it, through the metrics API.
        assert up.metric == f"s0-{metric_name}", up
        assert up.conditions.get("ScalingActive") == "True", up
        low, high = expected_total
        assert up.total is not None, up
        assert low <= up.total <= high, up
        served = [
            v
            for e in tap_calls(stack, name, "GetMetrics", log.history[0][0], stopped)
            for v in e["response"]["metricValues"]
        ]
        assert served, "KEDA never asked GetMetrics while the traffic ran"
        assert low <= max(served) <= high, served

        async def back_to_one() -> HpaStatus | None:
            hpa = await keda_hpa(kube, ns, name)
            return hpa if hpa.desired == 1 and log.now == 1 else None

        down = await eventually(back_to_one, "the HPA to go back to one replica", within=45)
        print(f"{name} quiet, HPA status: {down} ({time.time() - stopped:.1f} s after the traffic)")
        assert down.total is not None, down
        assert down.total < low, down

        await until_zero(log, COOLDOWN_1_TO_N)
        quiet = time.time() - stopped
        print(f"{name} replicas over time: {log.values()}; zero {quiet:.1f} s after the traffic")
        assert quiet >= COOLDOWN_1_TO_N - POLLING  # see until_zero
        history = log.values()
        top = history.index(peak)
        assert history[:2] == [0, 1], history
        assert max(history) == peak, history
        after = history[top:]
        assert after == sorted(after, reverse=True), history
        assert after[-2:] == [1, 0], history


async def test_concurrency_scales_keda_hpa_one_to_n_and_back_then_zero(
    stack: KedaStack, kube: Kube
) -> None:
    """6 requests always in flight (each pod answers after 0.5 s), target 2 per replica:
    the HPA settles on 3 replicas; quiet brings it back to 1, then KEDA to 0."""
    name = "conc"
    metric = await workload(
        kube,
        stack.namespace,
        name,
        metric={"concurrency": {"targetValue": 2}},
        cooldown=COOLDOWN_1_TO_N,
        max_replicas=4,
        response_delay=0.5,
    )
    load = Load(PORTS.proxy, host(name), workers=6, seconds=90, max_requests=2000)
    await scale_up_and_back(stack, kube, name, load, metric, peak=3, expected_total=(4.5, 6.5))


async def test_request_rate_scales_keda_hpa_one_to_n_and_back_then_zero(
    stack: KedaStack, kube: Kube
) -> None:
    """12 requests per second, target 5 per replica over a 10 s window: 3 replicas; quiet
    brings the rate down over the window, the HPA back to 1, then KEDA to 0."""
    name = "rate"
    metric = await workload(
        kube,
        stack.namespace,
        name,
        metric={"requestRate": {"targetValue": 5, "window": "10s", "granularity": "1s"}},
        cooldown=COOLDOWN_1_TO_N,
        max_replicas=4,
    )
    load = Load(PORTS.proxy, host(name), workers=3, seconds=90, max_requests=1200, rate=12)
    await scale_up_and_back(stack, kube, name, load, metric, peak=3, expected_total=(10, 14))


FAST_COOLDOWN = 3
FAST_RATE = 70  # requests per second, each answered by the pod at once (well under 1 ms)
FAST_SECONDS = 7 * FAST_COOLDOWN  # >= 5x the cooldown after a wake that may take seconds


async def test_steady_fast_requests_wake_once_and_never_sleep_in_keda_mode(
    stack: KedaStack, kube: Kube
) -> None:
    """>= 50 req/s of requests shorter than 1 ms for 5x the cooldown: exactly one wake, no
    sleep, KEDA told active by every IsActive and StreamIsActive answer meanwhile; one sleep
    after the traffic stops."""
    ns, name = stack.namespace, "fast"
    await workload(
        kube,
        ns,
        name,
        metric={"concurrency": {"targetValue": 100}},
        cooldown=FAST_COOLDOWN,
        max_replicas=2,
    )
    async with ReplicaLog(kube, ns, name) as log:
        load = Load(
            PORTS.proxy,
            host(name),
            workers=5,
            seconds=FAST_SECONDS,
            max_requests=FAST_RATE * FAST_SECONDS,
            rate=FAST_RATE,
        )
        began = time.time()
        tally = await sustain(stack.cluster, load)
        stopped = time.time()
        rate = tally.sent / (tally.ended - tally.began)
        print(f"\n{name}: {dict(tally.statuses)}, {rate:.1f} req/s, longest {tally.longest:.3f} s")
        assert_all_answered(tally)
        assert rate >= 50, rate
        during = log.values(began, stopped)
        woke = log.first(1)
        assert during == [0, 1], f"replicas while the traffic ran: {during}"
        assert woke is not None
        assert stopped - woke >= 5 * FAST_COOLDOWN, (woke, stopped)

        # KEDA asked (IsActive on every poll and for the HPA's reads, StreamIsActive messages)
        # and was told active every time while the traffic ran.
        polls = [e["response"]["result"] for e in tap_calls(stack, name, "IsActive", woke, stopped)]
        pushes = [
            e["response"]["result"]
            for e in tap_calls(stack, name, "StreamIsActive", woke + 1, stopped)
        ]
        print(f"{name}: IsActive answers while busy {polls}; StreamIsActive messages {pushes}")
        assert len(polls) >= FAST_SECONDS // POLLING - 2, polls
        assert all(polls), polls
        assert pushes, "no StreamIsActive message while the traffic ran"
        assert all(pushes), pushes

        await until_zero(log, FAST_COOLDOWN)
        quiet = time.time() - stopped
        print(f"{name}: replicas over time {log.values()}; zero {quiet:.1f} s after the traffic")
        assert quiet >= FAST_COOLDOWN - POLLING  # see until_zero
        assert log.values(began) == [0, 1, 0], log.values(began)
