"""Standalone mode's link to the scaler, over KEDA's external-scaler gRPC protocol.

Exactly what KEDA would do: one ``StreamIsActive`` per HTTPScaledObject (its ``scalerMetadata``
built like the ScaledObject trigger's, plus ``streamHeartbeat``: a third of
``stream_idle_timeout``), reopened with backoff when it breaks or goes silent for
``stream_idle_timeout``; the channel's keepalive pings (every ``stream_keepalive``) find a
connection that died without a reset sooner, and break every stream on it (its last word must
not stand), and ``GetMetrics`` every ``metrics_interval`` for 1 -> N, only for objects whose
last pass saw replicas above zero (at zero the metric decides nothing; a quiet fleet costs no
calls). A change is passed on
at once by poking the object's key into the work queue; the planner decides what it means. A
turn to active calls ``wake`` first, so a workload at zero is scaled without waiting for a
reconcile; when ``wake`` takes it (returns true) it pokes once its write is done.

The scaler turns a target inactive one activity window after its last request ended, so the
quiet period is counted from that end: the window is subtracted from the time ``false`` came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.logs import event
from wakeway.model.trigger import KEY_STREAM_HEARTBEAT, parse_metadata, scaler_metadata
from wakeway.operator.scaling import Activity
from wakeway.operator.settings import OperatorSettings
from wakeway.protocol import externalscaler_pb2 as pb
from wakeway.protocol.externalscaler_pb2_grpc import ExternalScalerStub

log = logging.getLogger("wakeway.operator.scaler")

METRICS_IN_FLIGHT = 64
"""GetMetrics calls in flight at once (one per object, every ``metrics_interval``)."""


@dataclass(slots=True)
class _Subscription:
    ref: pb.ScaledObjectRef
    metadata: dict[str, str]
    quiet_since: float
    activity_window: float
    connected: bool = False
    active: bool = False
    metric: float | None = None
    last_active: float | None = None
    metrics: bool = True  # poll GetMetrics for it
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def activity(self) -> Activity:
        return Activity(
            self.connected, self.active, self.quiet_since, self.metric, self.last_active
        )


class GrpcScalerLink:
    def __init__(
        self,
        settings: OperatorSettings,
        poke: Callable[[str], None],
        *,
        wake: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.poke = poke
        self.wake = wake
        self.clock = clock
        keepalive = int(settings.stream_keepalive * 1000)
        self._channel = grpc.aio.insecure_channel(
            settings.scaler_address,
            options=[
                ("grpc.keepalive_time_ms", keepalive),
                ("grpc.keepalive_timeout_ms", keepalive),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.max_pings_without_data", 0),
            ],
        )
        self._heartbeat = {KEY_STREAM_HEARTBEAT: f"{settings.stream_idle_timeout / 3:g}"}
        self._stub = ExternalScalerStub(self._channel)
        self._subs: dict[str, _Subscription] = {}
        self._poller: asyncio.Task[None] | None = None
        self._rng = random.Random()

    def activity(self, httpso: HTTPScaledObject, *, metrics: bool = True) -> Activity:
        metadata = {**scaler_metadata(httpso), **self._heartbeat}
        sub = self._subs.get(httpso.key)
        if sub is None or sub.metadata != metadata:
            if sub is not None and sub.task is not None:
                sub.task.cancel()
            ref = pb.ScaledObjectRef(
                name=httpso.name, namespace=httpso.namespace, scalerMetadata=metadata
            )
            window = parse_metadata(metadata, httpso.namespace).activity_window
            sub = _Subscription(ref, metadata, quiet_since=self.clock(), activity_window=window)
            sub.task = asyncio.create_task(
                self._follow(httpso.key, sub), name=f"stream-{httpso.key}"
            )
            self._subs[httpso.key] = sub
        if not metrics:
            sub.metric = None  # a value from before would be stale when polling starts again
        sub.metrics = metrics
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_metrics(), name="scaler-metrics")
        return sub.activity()

    def forget(self, key: str) -> None:
        sub = self._subs.pop(key, None)
        if sub is not None and sub.task is not None:
            sub.task.cancel()

    async def close(self) -> None:
        tasks = [s.task for s in self._subs.values() if s.task is not None]
        if self._poller is not None:
            tasks.append(self._poller)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subs.clear()
        await self._channel.close(None)

    async def _follow(self, key: str, sub: _Subscription) -> None:
        attempt = 0
        idle = self.settings.stream_idle_timeout
        while True:
            call = self._stub.StreamIsActive(sub.ref)
            answers = call.__aiter__()
            try:
                while True:
                    try:
                        async with asyncio.timeout(idle):
                            answer = await anext(answers)
                    except TimeoutError:
                        log.warning(
                            "%s: StreamIsActive sent nothing for %.1fs; reopening", key, idle
                        )
                        break
                    except StopAsyncIteration:
                        log.info("%s: the scaler ended StreamIsActive; reopening", key)
                        break
                    attempt = 0
                    self._answer(key, sub, answer.result)
            except grpc.aio.AioRpcError as exc:
                log.warning("%s: StreamIsActive: %s %s", key, exc.code(), exc.details())
            finally:
                call.cancel()
            if sub.connected:
                # No word from the scaler: forget what it said, the planner holds still.
                sub.connected, sub.metric = False, None
                self.poke(key)
            low, high = self.settings.stream_retry_min, self.settings.stream_retry_max
            delay = min(high, low * 2**attempt) * self._rng.uniform(0.8, 1.2)
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(delay)

    def _answer(self, key: str, sub: _Subscription, active: bool) -> None:
        now = self.clock()
        changed = not sub.connected or active != sub.active
        if active:
            sub.last_active = now
        elif sub.active:
            # The last request ended one activity window ago.
            sub.quiet_since = sub.last_active = now - sub.activity_window
        woke = active and (not sub.active or not sub.connected)
        sub.connected, sub.active = True, active
        # A wake that is taken over pokes the planner itself once its write is done, so the pass
        # sees the new replicas rather than racing the write with a second one.
        taken = woke and self.wake is not None and self.wake(key)
        if woke:
            log.info("%s: the scaler says active", key, extra=event("active", target=key))
        if changed and not taken:
            self.poke(key)

    async def _poll_metrics(self) -> None:
        # Every object at once (bounded): one slow or large answer must not hold the others
        # up, and thousands of objects must fit in one metrics_interval.
        limit = asyncio.Semaphore(METRICS_IN_FLIGHT)
        while True:
            connected = [(k, s) for k, s in self._subs.items() if s.connected and s.metrics]
            await asyncio.gather(*(self._poll_one(k, s, limit) for k, s in connected))
            await asyncio.sleep(self.settings.metrics_interval)

    async def _poll_one(self, key: str, sub: _Subscription, limit: asyncio.Semaphore) -> None:
        request = pb.GetMetricsRequest(scaledObjectRef=sub.ref)
        async with limit:
            try:
                answer = await self._stub.GetMetrics(request, timeout=self.settings.grpc_timeout)
            except grpc.aio.AioRpcError as exc:
                log.warning("%s: GetMetrics: %s %s", key, exc.code(), exc.details())
                return
        values = answer.metricValues
        value = (values[0].metricValueFloat or float(values[0].metricValue)) if values else 0.0
        if sub.connected and sub.metrics and value != sub.metric:
            sub.metric = value
            self.poke(key)
