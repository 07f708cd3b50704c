"""The ExternalScaler servicer (grpc.aio): a thin shell over :class:`LiveCounts`.

Every answer comes from memory. Active means requests in flight, or a request begun or ended
within the trigger's activity window (see :mod:`wakeway.scaler.aggregate`). ``StreamIsActive``
sends the current state at once, then each change the moment the count streams report it (and
``false`` the moment an activity window runs out) (a cold target's first held request arrives as a
``wake`` line, pushed without coalescing), and the current state again every ``stream_resend``
seconds while active: KEDA calls RequestScale for each message it receives, which keeps its
last-active time fresh while a target stays busy, and brings a request-rate target's aging window
to ``false``. While inactive the state is re-sent every ``stream_resend`` too, or every
``streamHeartbeat`` (trigger metadata) when the client asks for longer.

A trigger naming an InterceptorRoute (``interceptorRoute``) asks about every metric the route
declares (:class:`~wakeway.scaler.routes.RouteSource`): it is active when any of them is,
GetMetricSpec lists each, and GetMetrics answers the one KEDA names (every one when it names
none). A route the scaler does not know is NOT_FOUND (UNAVAILABLE before the first list).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any, NoReturn

import grpc

from wakeway.model.trigger import (
    KEY_INTERCEPTOR_ROUTE,
    MetadataError,
    MetricTarget,
    parse_metadata,
    route_key,
    stream_heartbeat,
)
from wakeway.protocol import externalscaler_pb2 as pb
from wakeway.protocol.externalscaler_pb2_grpc import ExternalScalerServicer

from .live import LiveCounts
from .routes import RouteSource, StaticRoutes
from .settings import ScalerSettings

log = logging.getLogger(__name__)

_TARGET_CACHE_SIZE = 4096

RefContext = grpc.aio.ServicerContext[pb.ScaledObjectRef, object]
MetricsContext = grpc.aio.ServicerContext[pb.GetMetricsRequest, pb.GetMetricsResponse]


class ExternalScalerService(ExternalScalerServicer):
    def __init__(
        self, live: LiveCounts, settings: ScalerSettings, routes: RouteSource | None = None
    ) -> None:
        self._live = live
        self._settings = settings
        self._routes: RouteSource = routes or StaticRoutes()
        self._targets: dict[tuple[str, tuple[tuple[str, str], ...]], MetricTarget] = {}
        self.streams = 0

    def target(self, ref: pb.ScaledObjectRef) -> MetricTarget:
        """The object and metric ``ref`` means (parsed once per distinct metadata)."""
        metadata: Mapping[str, str] = ref.scalerMetadata
        cache_key = (ref.namespace, tuple(sorted(metadata.items())))
        target = self._targets.get(cache_key)
        if target is None:
            target = parse_metadata(metadata, ref.namespace)
            if len(self._targets) >= _TARGET_CACHE_SIZE:
                self._targets.clear()
            self._targets[cache_key] = target
        return target

    def targets(self, ref: pb.ScaledObjectRef) -> tuple[MetricTarget, ...] | None:
        """Every metric ``ref`` asks about; None for an InterceptorRoute the scaler does not
        know (yet)."""
        key = route_key(ref.scalerMetadata, ref.namespace)
        if key is None:
            return (self.target(ref),)
        return self._routes.metrics_of(key)

    def _active(self, targets: tuple[MetricTarget, ...]) -> tuple[bool, float | None, float]:
        """Active when any metric is; until the last of the active ones runs out."""
        states = [self._live.active_and_until(t) for t in targets]
        now = states[0][2]
        untils = [until for active, until, _ in states if active]
        if not untils:
            return False, None, now
        return True, None if None in untils else max(u for u in untils if u is not None), now

    async def IsActive(
        self, request: pb.ScaledObjectRef, context: RefContext
    ) -> pb.IsActiveResponse:
        targets = await self._targets_or_abort(request, context)
        return pb.IsActiveResponse(result=any(self._live.active(t) for t in targets))

    async def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: RefContext
    ) -> AsyncIterator[pb.IsActiveResponse]:
        targets = await self._targets_or_abort(request, context)
        if self.streams >= self._settings.max_streams:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {self._settings.max_streams} StreamIsActive streams",
            )
        for target in targets:
            self._live.watch_metric(target)
        resend = self._settings.stream_resend
        # While inactive, the client may ask for fewer re-sends (KEDA needs them only while
        # active, to keep its last-active time fresh).
        try:
            heartbeat = max(resend, stream_heartbeat(request.scalerMetadata))
        except MetadataError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self.streams += 1
        try:
            with self._live.watch(targets[0].key) as changed:
                sent: bool | None = None
                due = 0.0
                while not self._live.closed:  # closed: the server is stopping
                    changed.clear()
                    # An InterceptorRoute's metrics may change while the stream is open.
                    targets = self.targets(request) or targets
                    active, until, now = self._active(targets)
                    if active != sent or now >= due:
                        yield pb.IsActiveResponse(result=active)
                        sent, due = active, now + (resend if active else heartbeat)
                    # Active only through the activity window: look again when it runs out.
                    wake_at = due if until is None else min(due, until)
                    try:
                        async with asyncio.timeout(max(0.0, wake_at - self._live.now())):
                            await changed.wait()
                    except TimeoutError:
                        pass
        finally:
            self.streams -= 1

    async def GetMetricSpec(
        self, request: pb.ScaledObjectRef, context: RefContext
    ) -> pb.GetMetricSpecResponse:
        specs = []
        for target in await self._targets_or_abort(request, context):
            self._live.watch_metric(target)
            specs.append(
                pb.MetricSpec(
                    metricName=target.metric_name,
                    targetSize=max(1, math.ceil(target.target_value)),
                    targetSizeFloat=target.target_value,
                )
            )
        return pb.GetMetricSpecResponse(metricSpecs=specs)

    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: MetricsContext
    ) -> pb.GetMetricsResponse:
        targets = await self._targets_or_abort(request.scaledObjectRef, context)
        asked = [t for t in targets if t.accepts_metric_name(request.metricName)]
        if not asked:
            names = " or ".join(repr(t.metric_name) for t in targets)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metricName: {request.metricName!r} is not {names} "
                "(with or without KEDA's sN- prefix)",
            )
        values = []
        for target in asked:
            value = self._live.value(target)
            values.append(
                pb.MetricValue(
                    metricName=target.metric_name,
                    metricValue=math.ceil(value),
                    metricValueFloat=value,
                )
            )
        return pb.GetMetricsResponse(metricValues=values)

    async def StreamMetricSpec(  # type: ignore[override]
        self, request: pb.ScaledObjectRef, context: RefContext
    ) -> None:
        # KEDA treats UNIMPLEMENTED as "use GetMetricSpec"; ours only changes with the metadata.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "StreamMetricSpec: use GetMetricSpec")

    async def _targets_or_abort(
        self, ref: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[MetricTarget, ...]:
        try:
            targets = self.targets(ref)
        except MetadataError as exc:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if targets:
            return targets
        name = f"{ref.namespace}/{ref.scalerMetadata.get(KEY_INTERCEPTOR_ROUTE, '')}"
        if not self._routes.synced():
            text = f"InterceptorRoutes are not listed yet; try again ({name})"
            await _abort(context, grpc.StatusCode.UNAVAILABLE, text)
        text = f"scalerMetadata.{KEY_INTERCEPTOR_ROUTE}: no InterceptorRoute {name}"
        return await _abort(context, grpc.StatusCode.NOT_FOUND, text)


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, text: str
) -> NoReturn:
    await context.abort(code, text)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover
