"""The scaler for real: interceptors on 127.0.0.1, the scaler, and a grpc.aio client.

Waits are bounded polls or stream reads with timeouts; nothing here asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc
import pytest

from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
    until,
)
from wakeway.interceptor import Interceptor
from wakeway.protocol import externalscaler_pb2 as pb
from wakeway.protocol.externalscaler_pb2_grpc import ExternalScalerStub
from wakeway.scaler import ReplicaSet, Scaler, ScalerSettings, scaler_metadata

if TYPE_CHECKING:
    from wakeway.protocol.externalscaler_pb2_grpc import ExternalScalerAsyncStub

pytestmark = pytest.mark.component

STALE_AFTER = 2.0
SETTINGS = ScalerSettings(
    listen_host="127.0.0.1",
    listen_port=0,
    stale_after=STALE_AFTER,
    reconnect_min=0.05,
    reconnect_max=0.2,
    connect_timeout=1.0,
    stream_resend=30.0,  # long: a message on the stream is a change, not a resend
)
TARGET = make_target()
REF = pb.ScaledObjectRef(name="app", namespace="test", scalerMetadata=scaler_metadata(TARGET))
ALL = pb.ScaledObjectRef(
    name="interceptor",
    namespace="wakeway",
    scalerMetadata={"interceptorTargetPendingRequests": "5"},
)


def admin_address(interceptor: Interceptor) -> str:
    return f"127.0.0.1:{interceptor.admin_port}"


class Harness:
    """A scaler subscribed to some interceptors, a gRPC stub, and an HTTP client session."""

    def __init__(
        self,
        scaler: Scaler,
        replicas: ReplicaSet,
        stub: ExternalScalerAsyncStub,
        http: aiohttp.ClientSession,
    ) -> None:
        self.scaler = scaler
        self.replicas = replicas
        self.stub = stub
        self.http = http
        self._requests: list[asyncio.Task[Any]] = []

    def hold(self, proxy_port: int, n: int = 1) -> None:
        """Send ``n`` requests to a proxy; they are held while the target has no endpoints."""
        for _ in range(n):
            self._requests.append(
                asyncio.create_task(self._get(f"http://127.0.0.1:{proxy_port}/echo"))
            )

    async def _get(self, url: str) -> int:
        try:
            async with self.http.get(url) as resp:
                await resp.read()
                return resp.status
        except aiohttp.ClientError:
            return -1  # the replica was killed

    async def answered(self) -> list[int]:
        async with asyncio.timeout(10):
            return list(await asyncio.gather(*self._requests))

    async def metric(self, ref: pb.ScaledObjectRef = REF, name: str = "") -> float:
        request = pb.GetMetricsRequest(scaledObjectRef=ref, metricName=name)
        response = await self.stub.GetMetrics(request)
        return float(response.metricValues[0].metricValueFloat)

    async def metric_becomes(self, value: float, ref: pb.ScaledObjectRef = REF) -> None:
        async with asyncio.timeout(10):
            while True:  # a bounded poll of the RPC under test
                if await self.metric(ref) == value:
                    return
                await asyncio.sleep(0.005)

    async def metric_settles(self, below: float, ref: pb.ScaledObjectRef = REF) -> None:
        """Nothing in flight any more: the concurrency metric is only the time-average of the
        ``below`` requests that were (above zero: they count for the time they were held)."""
        async with asyncio.timeout(10):
            while True:  # a bounded poll of the RPC under test
                if 0 < await self.metric(ref) < below:
                    return
                await asyncio.sleep(0.005)

    def cancel(self) -> None:
        for task in self._requests:
            task.cancel()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    replicas = ReplicaSet()
    scaler = Scaler(SETTINGS, replicas)
    await scaler.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{scaler.port}")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        h = Harness(scaler, replicas, ExternalScalerStub(channel), http)
        try:
            yield h
        finally:
            h.cancel()
            await channel.close(None)
            await scaler.stop(grace=0.1)


async def cold_interceptor(start: StartInterceptor) -> Interceptor:
    """An interceptor routing everything to TARGET, which has no endpoints yet."""
    interceptor: Interceptor = await start()
    interceptor.set_router(HostRouter({"*": TARGET}))
    return interceptor


async def subscribed(harness: Harness, *addresses: str) -> None:
    harness.replicas.set(addresses)
    agg = harness.scaler.live.aggregator
    await until(lambda: agg.replicas >= set(addresses))


def cancel(call: Any) -> None:
    call.cancel()


async def read(call: Any) -> pb.IsActiveResponse:
    async with asyncio.timeout(10):
        response: pb.IsActiveResponse = await call.read()
    return response


# -- every RPC ---------------------------------------------------------------------------------


async def test_get_metric_spec_fills_int_and_float_targets(harness: Harness) -> None:
    spec = (await harness.stub.GetMetricSpec(REF)).metricSpecs
    assert [(s.metricName, s.targetSize, s.targetSizeFloat) for s in spec] == [
        ("http-test-app-concurrency", 100, 100.0)
    ]
    rate = make_target(scalingMetric={"requestRate": {"targetValue": 2.5, "window": "30s"}})
    ref = pb.ScaledObjectRef(name="app", namespace="test", scalerMetadata=scaler_metadata(rate))
    spec = (await harness.stub.GetMetricSpec(ref)).metricSpecs
    assert [(s.metricName, s.targetSize, s.targetSizeFloat) for s in spec] == [
        ("http-test-app-requestrate", 3, 2.5)
    ]


async def test_bad_metadata_is_invalid_argument_naming_the_key(harness: Harness) -> None:
    bad = pb.ScaledObjectRef(
        name="app", namespace="test", scalerMetadata={"httpScaledObject": "app", "metric": "cpu"}
    )
    calls: list[Awaitable[object]] = [
        harness.stub.IsActive(bad),
        harness.stub.GetMetricSpec(bad),
        harness.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=bad)),
        read(harness.stub.StreamIsActive(bad)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "scalerMetadata.metric" in (info.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await harness.stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=REF, metricName="s0-something-else")
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metricName" in (info.value.details() or "")


async def test_stream_metric_spec_is_unimplemented(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await read(harness.stub.StreamMetricSpec(REF))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_stream_is_active_goes_true_on_a_held_request_and_false_when_answered(
    harness: Harness, start_interceptor: StartInterceptor, backend: Backend
) -> None:
    interceptor = await cold_interceptor(start_interceptor)
    await subscribed(harness, admin_address(interceptor))
    stream = harness.stub.StreamIsActive(REF)
    assert (await read(stream)).result is False  # the current state, at once
    assert (await harness.stub.IsActive(REF)).result is False

    harness.hold(interceptor.proxy_port)
    assert (await read(stream)).result is True
    assert (await harness.stub.IsActive(REF)).result is True
    for name in ("", "http-test-app-concurrency", "s0-http-test-app-concurrency"):
        response = await harness.stub.GetMetrics(
            pb.GetMetricsRequest(scaledObjectRef=REF, metricName=name)
        )
        assert [(v.metricName, v.metricValue, v.metricValueFloat) for v in response.metricValues]
        assert response.metricValues[0].metricName == "http-test-app-concurrency"
        assert response.metricValues[0].metricValue == 1
        assert response.metricValues[0].metricValueFloat == 1.0
    assert await harness.metric(ALL) == 1.0
    assert (await harness.stub.IsActive(ALL)).result is True

    interceptor.set_endpoints({backend_key(TARGET): [backend.addr]})
    assert await harness.answered() == [200]
    assert (await read(stream)).result is False
    assert (await harness.stub.IsActive(REF)).result is False
    cancel(stream)


async def test_steady_short_requests_keep_it_active_throughout(
    harness: Harness, start_interceptor: StartInterceptor, backend: Backend
) -> None:
    """50 req/s of requests that start and end inside one count batch: never seen in flight,
    yet IsActive is true at every poll, StreamIsActive says true once and stays true, the rate
    is there, and the stream says false only after the traffic stops."""
    rate_target = make_target(
        scalingMetric={"requestRate": {"targetValue": 10, "window": "2s", "granularity": "250ms"}}
    )
    rate_ref = pb.ScaledObjectRef(
        name="app", namespace="test", scalerMetadata=scaler_metadata(rate_target)
    )
    interceptor = await cold_interceptor(start_interceptor)
    interceptor.set_endpoints({backend_key(TARGET): [backend.addr]})
    await subscribed(harness, admin_address(interceptor))
    await harness.stub.GetMetricSpec(REF)  # KEDA asks for the specs first; windows start
    await harness.stub.GetMetricSpec(rate_ref)
    stream = harness.stub.StreamIsActive(REF)
    assert (await read(stream)).result is False
    messages: list[bool] = []

    async def follow() -> None:
        while True:
            messages.append((await read(stream)).result)

    follower = asyncio.create_task(follow())
    url = f"http://127.0.0.1:{interceptor.proxy_port}/echo"
    loop = asyncio.get_running_loop()
    polls: list[bool] = []
    rates: list[float] = []
    agg = harness.scaler.live.aggregator
    seen_in_flight = 0
    for i in range(200):  # 50 per second for 4 s, bounded
        began = loop.time()
        async with harness.http.get(url) as resp:
            assert resp.status == 200
            await resp.read()
        seen_in_flight = max(seen_in_flight, agg.concurrency(TARGET.key))
        if i >= 10:
            polls.append((await harness.stub.IsActive(REF)).result)
        if i >= 150:  # the 2 s rate window is full of traffic by now
            rates.append(await harness.metric(rate_ref))
        await asyncio.sleep(max(0.0, began + 0.02 - loop.time()))
    assert polls == [True] * len(polls)
    assert messages == [True]  # one change, and no false while the traffic ran
    assert all(20 <= r <= 60 for r in rates), rates  # ~50 req/s over window and granularity
    assert 0 < await harness.metric(REF) < 1  # the time-average: each request took well < 20 ms
    await until(lambda: messages == [True, False])  # after the activity window
    assert (await harness.stub.IsActive(REF)).result is False
    follower.cancel()
    cancel(stream)
    del seen_in_flight  # sampled only to show it: mostly 0 between requests


async def test_stream_is_active_resends_its_state(
    start_interceptor: StartInterceptor,
) -> None:
    interceptor = await cold_interceptor(start_interceptor)
    settings = replace(SETTINGS, stream_resend=0.05)
    async with (
        Scaler(settings, ReplicaSet([admin_address(interceptor)])) as scaler,
        grpc.aio.insecure_channel(f"127.0.0.1:{scaler.port}") as channel,
    ):
        stream = ExternalScalerStub(channel).StreamIsActive(REF)
        results = [(await read(stream)).result for _ in range(3)]
        assert results == [False, False, False]
        cancel(stream)


async def test_an_inactive_state_is_resent_every_stream_heartbeat_when_asked(
    start_interceptor: StartInterceptor,
) -> None:
    interceptor = await cold_interceptor(start_interceptor)
    settings = replace(SETTINGS, stream_resend=0.05)
    slow = {**REF.scalerMetadata, "streamHeartbeat": "3"}
    bad = {**REF.scalerMetadata, "streamHeartbeat": "soon"}
    async with (
        Scaler(settings, ReplicaSet([admin_address(interceptor)])) as scaler,
        grpc.aio.insecure_channel(f"127.0.0.1:{scaler.port}") as channel,
    ):
        stub = ExternalScalerStub(channel)
        plain = stub.StreamIsActive(REF)
        quiet = stub.StreamIsActive(
            pb.ScaledObjectRef(name="app", namespace="test", scalerMetadata=slow)
        )
        assert (await read(quiet)).result is False  # the state at once
        second = asyncio.create_task(read(quiet))
        assert [(await read(plain)).result for _ in range(6)] == [False] * 6  # >= 0.25 s
        assert not second.done()  # no re-send yet on the stream that asked for fewer
        assert (await second).result is False  # but one in the end
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await read(
                stub.StreamIsActive(
                    pb.ScaledObjectRef(name="app", namespace="test", scalerMetadata=bad)
                )
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "streamHeartbeat" in (info.value.details() or "")
        cancel(plain)
        cancel(quiet)


async def test_request_rate_from_the_counters(
    harness: Harness, start_interceptor: StartInterceptor, backend: Backend
) -> None:
    rate = make_target(scalingMetric={"requestRate": {"targetValue": 10, "window": "10s"}})
    ref = pb.ScaledObjectRef(name="app", namespace="test", scalerMetadata=scaler_metadata(rate))
    interceptor = await cold_interceptor(start_interceptor)
    interceptor.set_endpoints({backend_key(TARGET): [backend.addr]})
    await subscribed(harness, admin_address(interceptor))
    await harness.stub.GetMetricSpec(ref)  # KEDA asks for the spec first; the window starts
    assert (await harness.stub.IsActive(ref)).result is False
    harness.hold(interceptor.proxy_port, 20)
    assert await harness.answered() == [200] * 20
    await harness.metric_becomes(2.0, ref)  # 20 requests over a 10 s window
    response = await harness.stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=ref))
    assert response.metricValues[0].metricValue == 2
    assert (await harness.stub.IsActive(ref)).result is True  # nothing in flight, rate > 0


# -- several replicas ----------------------------------------------------------------------------


async def test_two_replicas_are_summed(
    harness: Harness, start_interceptor: StartInterceptor, backend: Backend
) -> None:
    one = await cold_interceptor(start_interceptor)
    two = await cold_interceptor(start_interceptor)
    await subscribed(harness, admin_address(one), admin_address(two))
    stream = harness.stub.StreamIsActive(REF)
    assert (await read(stream)).result is False
    harness.hold(one.proxy_port, 2)
    harness.hold(two.proxy_port, 3)
    assert (await read(stream)).result is True
    await harness.metric_becomes(5.0)
    assert harness.scaler.live.aggregator.held(TARGET.key) == 5
    for interceptor in (one, two):
        interceptor.set_endpoints({backend_key(TARGET): [backend.addr]})
    assert await harness.answered() == [200] * 5
    await harness.metric_settles(below=5)
    assert (await read(stream)).result is False
    cancel(stream)


async def test_a_replica_that_leaves_the_set_is_dropped_after_the_bound(
    harness: Harness, start_interceptor: StartInterceptor
) -> None:
    one = await cold_interceptor(start_interceptor)
    two = await cold_interceptor(start_interceptor)
    await subscribed(harness, admin_address(one), admin_address(two))
    harness.hold(one.proxy_port, 1)
    harness.hold(two.proxy_port, 2)
    await harness.metric_becomes(3.0)
    harness.replicas.set([admin_address(two)])
    agg = harness.scaler.live.aggregator
    await until(lambda: harness.scaler.subscribers.addresses == {admin_address(two)})
    assert agg.replicas == {admin_address(one), admin_address(two)}  # counts stand meanwhile
    await harness.metric_becomes(2.0)
    assert agg.replicas == {admin_address(two)}


# A replica in its own process, so that it can be killed or frozen for real.
REPLICA_SCRIPT = """
import asyncio, sys
import uvloop
from dataclasses import replace
from tests.interceptor_helpers import TEST_SETTINGS, HostRouter, make_target
from wakeway.interceptor import Interceptor

async def main():
    interceptor = Interceptor(TEST_SETTINGS)
    interceptor.set_router(HostRouter({"*": make_target()}))
    await interceptor.start()
    print(interceptor.admin_port, interceptor.proxy_port, flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""


@pytest.fixture
def replica_process() -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [sys.executable, "-c", REPLICA_SCRIPT],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        assert proc.stdout is not None
        admin_port, proxy_port = map(int, proc.stdout.readline().split())
        yield proc, admin_port, proxy_port
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # also ends a stopped process
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
async def test_a_dead_replica_is_dropped_after_the_bound_and_never_stalls_the_other(
    harness: Harness,
    start_interceptor: StartInterceptor,
    replica_process: tuple[subprocess.Popen[str], int, int],
    sig: signal.Signals,
) -> None:
    proc, dead_admin, dead_proxy = replica_process
    live = await cold_interceptor(start_interceptor)
    dead = f"127.0.0.1:{dead_admin}"
    await subscribed(harness, dead, admin_address(live))
    stream = harness.stub.StreamIsActive(REF)
    assert (await read(stream)).result is False
    harness.hold(dead_proxy, 2)
    harness.hold(live.proxy_port, 1)
    await harness.metric_becomes(3.0)
    assert (await read(stream)).result is True

    proc.send_signal(sig)
    agg = harness.scaler.live.aggregator
    assert dead in agg.replicas  # a silent replica's counts stand until the bound
    # The live replica's changes still arrive while the dead one is neither answering nor gone.
    harness.hold(live.proxy_port, 1)
    await until(lambda: agg.concurrency(TARGET.key) in (4, 2), within=10)
    # After the bound the dead replica is dropped; only the live one counts.
    await harness.metric_becomes(2.0)
    assert agg.replicas == {admin_address(live)}
    assert (await harness.stub.IsActive(REF)).result is True
    # The scaler keeps trying to reach it, without holding anything else up.
    live.fail_held(TARGET.key, 502, "test over")
    await until(lambda: agg.concurrency(TARGET.key) == 0, within=10)
    assert (await read(stream)).result is False
    cancel(stream)
