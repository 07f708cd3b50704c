"""Standalone mode's link to the scaler, over KEDA's external-scaler gRPC protocol.

Exactly what KEDA would do: one ``StreamIsActive`` per HTTPScaledObject (its ``scalerMetadata``
built like the ScaledObject trigger's), reopened with backoff when it breaks, and ``GetMetrics``
every ``metrics_interval`` for 1 -> N. A change is passed on at once by poking the object's key
into the work queue; the planner decides what it means.
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
from wakeway.model.trigger import scaler_metadata
from wakeway.operator.scaling import Activity
from wakeway.operator.settings import OperatorSettings
from wakeway.protocol import externalscaler_pb2 as pb
from wakeway.protocol.externalscaler_pb2_grpc import ExternalScalerStub

log = logging.getLogger("wakeway.operator.scaler")


@dataclass(slots=True)
class _Subscription:
    ref: pb.ScaledObjectRef
    metadata: dict[str, str]
    quiet_since: float
    connected: bool = False
    active: bool = False
    metric: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def activity(self) -> Activity:
        return Activity(self.connected, self.active, self.quiet_since, self.metric)


class GrpcScalerLink:
    def __init__(
        self,
        settings: OperatorSettings,
        poke: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.poke = poke
        self.clock = clock
        self._channel = grpc.aio.insecure_channel(settings.scaler_address)
        self._stub = ExternalScalerStub(self._channel)
        self._subs: dict[str, _Subscription] = {}
        self._poller: asyncio.Task[None] | None = None
        self._rng = random.Random()

    def activity(self, httpso: HTTPScaledObject) -> Activity:
        metadata = scaler_metadata(httpso)
        sub = self._subs.get(httpso.key)
        if sub is None or sub.metadata != metadata:
            if sub is not None and sub.task is not None:
                sub.task.cancel()
            ref = pb.ScaledObjectRef(
                name=httpso.name, namespace=httpso.namespace, scalerMetadata=metadata
            )
            sub = _Subscription(ref, metadata, quiet_since=self.clock())
            sub.task = asyncio.create_task(
                self._follow(httpso.key, sub), name=f"stream-{httpso.key}"
            )
            self._subs[httpso.key] = sub
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
        while True:
            try:
                call = self._stub.StreamIsActive(sub.ref)
                async for answer in call:
                    attempt = 0
                    changed = not sub.connected or answer.result != sub.active
                    if sub.active and not answer.result:
                        sub.quiet_since = self.clock()
                    sub.connected, sub.active = True, answer.result
                    if changed:
                        self.poke(key)
                log.info("%s: the scaler ended StreamIsActive; reopening", key)
            except grpc.aio.AioRpcError as exc:
                log.warning("%s: StreamIsActive: %s %s", key, exc.code(), exc.details())
            if sub.connected:
                sub.connected = False
                self.poke(key)
            low, high = self.settings.stream_retry_min, self.settings.stream_retry_max
            delay = min(high, low * 2**attempt) * self._rng.uniform(0.8, 1.2)
            attempt = min(attempt + 1, 30)
            await asyncio.sleep(delay)

    async def _poll_metrics(self) -> None:
        while True:
            for key, sub in list(self._subs.items()):
                if not sub.connected:
                    continue
                request = pb.GetMetricsRequest(scaledObjectRef=sub.ref)
                try:
                    answer = await self._stub.GetMetrics(
                        request, timeout=self.settings.grpc_timeout
                    )
                except grpc.aio.AioRpcError as exc:
                    log.warning("%s: GetMetrics: %s %s", key, exc.code(), exc.details())
                    continue
                values = answer.metricValues
                value = (
                    (values[0].metricValueFloat or float(values[0].metricValue)) if values else 0.0
                )
                if value != sub.metric:
                    sub.metric = value
                    self.poke(key)
            await asyncio.sleep(self.settings.metrics_interval)
