"""The scaler's Prometheus metrics: gRPC calls by method and code with their latency, the count
streams from the interceptors, open StreamIsActive streams and busy targets; and ``/targets``,
each target's requests in flight and held, for ``wakeway status``.

Calls are counted by a grpc.aio server interceptor (no change to the servicer); everything else
is read from the scaler's own state at scrape time.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from wakeway.observe.metrics import FAST_BUCKETS, Histogram, build_info, histograms, labelled

from .live import LiveCounts
from .service import ExternalScalerService
from .subscriber import Subscribers

if TYPE_CHECKING:  # the stubs' generics are not subscriptable at run time
    Handler = grpc.RpcMethodHandler[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


def _code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode | None:
    code: grpc.StatusCode | None = context.code()  # None until something sets it
    return code


class CallStats(_Interceptor):
    """Counts each RPC by method and final status code, and times unary ones."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, ...], int] = {}  # (method, code)
        self.latency: dict[str, Histogram] = {}

    def record(self, method: str, code: grpc.StatusCode | None, seconds: float | None) -> None:
        name = (code or grpc.StatusCode.OK).name
        key = (method, name)
        self.calls[key] = self.calls.get(key, 0) + 1
        if seconds is not None:
            hist = self.latency.get(method)
            if hist is None:
                hist = self.latency[method] = Histogram(FAST_BUCKETS)
            hist.observe(seconds)

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler:
        handler: Handler | None = await continuation(details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED
            return handler  # type: ignore[return-value]
        method = details.method.rpartition("/")[2]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, method: str, behaviour: Any) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            began = time.perf_counter()
            try:
                result = await behaviour(request, context)
            except Exception:
                self.record(method, _code(context) or grpc.StatusCode.UNKNOWN, None)
                raise
            code = _code(context)
            ok = code in (None, grpc.StatusCode.OK)
            self.record(method, code, time.perf_counter() - began if ok else None)
            return result

        return call

    def _stream(self, method: str, behaviour: Any) -> Any:
        async def call(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            code: grpc.StatusCode | None = None
            try:
                messages = behaviour(request, context)
                if inspect.isawaitable(messages):  # a handler that writes or aborts, not yields
                    await messages
                else:
                    async for message in messages:
                        yield message
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED  # the client went away
                raise
            except Exception:
                code = _code(context) or grpc.StatusCode.UNKNOWN
                raise
            finally:
                self.record(method, code or _code(context), None)

        return call


class _Collector(Collector):
    def __init__(
        self,
        service: ExternalScalerService,
        subscribers: Subscribers,
        live: LiveCounts,
        calls: CallStats,
    ) -> None:
        self.service = service
        self.subscribers = subscribers
        self.live = live
        self.calls = calls

    def collect(self) -> Iterator[Metric]:
        calls = self.calls
        yield labelled(
            CounterMetricFamily,
            "wakeway_scaler_grpc_calls",
            "External-scaler RPCs finished (streams: when they end), by method and status code",
            ["method", "code"],
            calls.calls,
        )
        yield histograms(
            "wakeway_scaler_grpc_call_duration_seconds",
            "Time to answer a unary RPC that succeeded (IsActive, GetMetrics, GetMetricSpec)",
            ["method"],
            {(method,): hist for method, hist in calls.latency.items()},
        )
        yield GaugeMetricFamily(
            "wakeway_scaler_active_streams",
            "StreamIsActive streams open now",
            value=self.service.streams,
        )
        subscribers = self.subscribers
        yield GaugeMetricFamily(
            "wakeway_scaler_interceptors",
            "Interceptor replicas the scaler subscribes to (count streams it keeps open)",
            value=len(subscribers.addresses),
        )
        aggregator = self.live.aggregator
        yield GaugeMetricFamily(
            "wakeway_scaler_interceptors_reporting",
            "Interceptor replicas whose counts are current (heard from within stale_after)",
            value=len(aggregator.replicas),
        )
        yield CounterMetricFamily(
            "wakeway_scaler_count_stream_connects",
            "Count streams opened to interceptor replicas (a reconnect counts again)",
            value=sum(s.connects for s in subscribers.subscribers.values()),
        )
        in_flight, held = aggregator.busy()
        yield labelled(
            GaugeMetricFamily,
            "wakeway_scaler_targets",
            "Targets with requests in flight, and with requests held, summed over replicas",
            ["state"],
            {("in_flight",): in_flight, ("held",): held},
        )
        yield CounterMetricFamily(
            "wakeway_scaler_wakes_seen",
            "Times a target went from no held request to some (a wake pushed to the streams)",
            value=self.live.wakes,
        )


def scaler_registry(
    service: ExternalScalerService, subscribers: Subscribers, live: LiveCounts, calls: CallStats
) -> CollectorRegistry:
    """The scaler's metrics and build info, read from its parts at scrape time."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Collector(service, subscribers, live, calls))
    registry.register(build_info("scaler"))
    return registry


def targets_handler(live: LiveCounts) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``GET /targets[?namespace=NS]``: ``{"replicas": N, "targets": {"ns/name": {"inFlight":
    I, "held": H}}}`` for every target with a request in flight or held, summed over the
    ``N`` interceptor replicas whose counts are current; a target not listed has none."""

    async def targets(request: web.Request) -> web.Response:
        namespace = request.query.get("namespace") or None
        aggregator = live.aggregator
        counts = aggregator.counts(namespace)
        return web.json_response(
            {
                "replicas": len(aggregator.replicas),
                "targets": {k: {"inFlight": i, "held": h} for k, (i, h) in counts.items()},
            }
        )

    return targets
