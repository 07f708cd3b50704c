"""Standalone mode's link to the scaler, against a real grpc.aio server on 127.0.0.1.

The server is a small ExternalScaler whose StreamIsActive says what the test tells it and can go
silent without closing (as a connection that died without a reset does). Waits are bounded polls
of the link's state or of the server's counters.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tests.interceptor_helpers import make_target, until
from wakeway.operator.scalerlink import GrpcScalerLink
from wakeway.operator.settings import OperatorSettings
from wakeway.protocol import externalscaler_pb2 as pb
from wakeway.protocol.externalscaler_pb2_grpc import (
    ExternalScalerServicer,
    add_ExternalScalerServicer_to_server,
)

pytestmark = pytest.mark.component

TARGET = make_target()


class Scaler(ExternalScalerServicer):
    """Streams the states put in ``states`` (or ``always``, re-sent), and never ends a stream.
    The RPCs the link never makes are not served."""

    IsActive = GetMetricSpec = StreamMetricSpec = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.states: asyncio.Queue[bool] = asyncio.Queue()
        self.streams = 0
        self.metric = 7.0
        self.slow = asyncio.Event()  # GetMetrics for an object named "slow" waits for it
        self.always: bool | None = None  # set: every stream sends this, every 0.1 s
        self.polled: Counter[str] = Counter()  # GetMetrics calls, by object name

    async def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: Any
    ) -> AsyncIterator[pb.IsActiveResponse]:
        self.streams += 1
        while self.always is not None:  # every stream says the same, as a scaler re-sending
            yield pb.IsActiveResponse(result=self.always)
            await asyncio.sleep(0.1)
        while True:
            yield pb.IsActiveResponse(result=await self.states.get())

    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: Any
    ) -> pb.GetMetricsResponse:
        self.polled[request.scaledObjectRef.name] += 1
        if request.scaledObjectRef.name == "slow":
            await self.slow.wait()
        value = pb.MetricValue(metricName="m", metricValueFloat=self.metric)
        return pb.GetMetricsResponse(metricValues=[value])


class Link:
    """The link under test, with what it told the controller: pokes and wakes."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.pokes: list[str] = []
        self.wakes: list[str] = []
        self.take_wakes = False  # whether wake() takes the wake on (then it pokes itself)
        self.link: GrpcScalerLink

    def poke(self, key: str) -> None:
        self.pokes.append(key)

    def wake(self, key: str) -> bool:
        self.wakes.append(key)
        return self.take_wakes


@pytest.fixture
async def scaler() -> AsyncIterator[tuple[Scaler, int]]:
    servicer = Scaler()
    server = grpc.aio.server()
    add_ExternalScalerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(None)


@pytest.fixture
async def link(scaler: tuple[Scaler, int]) -> AsyncIterator[Link]:
    settings = OperatorSettings(
        scaler_address=f"127.0.0.1:{scaler[1]}",
        metrics_interval=0.05,
        stream_retry_min=0.05,
        stream_retry_max=0.1,
        stream_idle_timeout=0.5,
    )
    clock = [1000.0]
    wrapped = Link(clock)
    wrapped.link = GrpcScalerLink(settings, wrapped.poke, wake=wrapped.wake, clock=lambda: clock[0])
    try:
        yield wrapped
    finally:
        await wrapped.link.close()


async def test_a_turn_to_active_wakes_before_the_poke_and_quiet_counts_from_the_last_request(
    scaler: tuple[Scaler, int], link: Link
) -> None:
    servicer, _ = scaler
    assert not link.link.activity(TARGET).connected  # subscribes
    servicer.states.put_nowait(False)
    await until(lambda: link.link.activity(TARGET).connected)
    assert link.wakes == []
    servicer.states.put_nowait(True)
    await until(lambda: link.link.activity(TARGET).active)
    assert link.wakes == [TARGET.key]  # the wake fast path, once per turn to active
    assert link.pokes.count(TARGET.key) == 2  # connected, then active (wake not taken)
    servicer.states.put_nowait(True)  # a resend: no second wake
    link.clock[0] = 1010.0
    servicer.states.put_nowait(False)
    await until(lambda: not link.link.activity(TARGET).active)
    assert link.wakes == [TARGET.key]
    activity = link.link.activity(TARGET)
    # The scaler says false one activity window (1 s by default) after the last request ended.
    assert activity.quiet_since == 1009.0
    assert activity.last_active == 1009.0


async def test_a_silent_stream_is_taken_as_broken_and_its_metric_forgotten(
    scaler: tuple[Scaler, int], link: Link
) -> None:
    servicer, _ = scaler
    link.link.activity(TARGET)
    servicer.states.put_nowait(True)
    await until(lambda: link.link.activity(TARGET).active)
    await until(lambda: link.link.activity(TARGET).metric == 7.0)
    # Nothing more on the stream, and it stays open: after stream_idle_timeout the link gives up
    # on it, forgets what it said (the planner then holds still), and opens another.
    pokes = len(link.pokes)
    await until(lambda: not link.link.activity(TARGET).connected, within=5)
    assert link.link.activity(TARGET).metric is None
    assert len(link.pokes) > pokes  # the planner was told
    await until(lambda: servicer.streams == 2, within=5)
    servicer.states.put_nowait(False)
    await until(lambda: link.link.activity(TARGET).connected)
    assert not link.link.activity(TARGET).active


async def test_a_wake_taken_on_is_not_also_poked(scaler: tuple[Scaler, int], link: Link) -> None:
    """The controller's wake pokes once its write is done; a poke now would race the write."""
    servicer, _ = scaler
    link.take_wakes = True
    link.link.activity(TARGET)
    servicer.states.put_nowait(False)
    await until(lambda: link.link.activity(TARGET).connected)
    pokes = len(link.pokes)
    servicer.states.put_nowait(True)
    await until(lambda: link.link.activity(TARGET).active)
    assert link.wakes == [TARGET.key]
    assert len(link.pokes) == pokes


async def test_a_slow_get_metrics_does_not_hold_up_the_others(
    scaler: tuple[Scaler, int], link: Link
) -> None:
    servicer, _ = scaler
    servicer.always = True
    slow = make_target(name="slow")
    link.link.activity(slow)
    link.link.activity(TARGET)
    await until(lambda: link.link.activity(slow).connected and link.link.activity(TARGET).connected)
    await until(lambda: link.link.activity(TARGET).metric == 7.0)
    assert link.link.activity(slow).metric is None  # still waiting for its answer
    servicer.slow.set()
    await until(lambda: link.link.activity(slow).metric == 7.0)


async def test_metrics_are_polled_only_while_asked_and_forgotten_when_not(
    scaler: tuple[Scaler, int], link: Link
) -> None:
    servicer, _ = scaler
    servicer.always = False
    asleep = make_target(name="asleep")
    link.link.activity(asleep, metrics=False)  # its last pass saw zero replicas
    link.link.activity(TARGET)
    await until(lambda: servicer.polled[TARGET.name] >= 3)  # several polling rounds
    assert link.link.activity(asleep, metrics=False).connected
    assert servicer.polled[asleep.name] == 0
    link.link.activity(asleep)  # woken: polled from now on
    await until(lambda: link.link.activity(asleep).metric == 7.0)
    # Back at zero: the value is dropped, so a later wake does not start from a stale one.
    assert link.link.activity(asleep, metrics=False).metric is None
