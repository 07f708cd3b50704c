"""OpenTelemetry tracing of the interceptor's requests: off unless the standard OTEL_* variables
ask for it, and then imported lazily, so a process without tracing never loads the SDK.

On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp`` or ``console``; ``none`` is off) or
an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
and ``OTEL_SDK_DISABLED`` is not ``true``. The SDK reads the rest itself (endpoint, headers,
timeout, sampler, resource attributes, ``OTEL_SERVICE_NAME``, batch sizes).

One request is one trace (or a part of the caller's, from its W3C ``traceparent``): a SERVER
span for the whole exchange with children ``route`` (the routing decision), ``hold`` (waiting at
the cold-start gate), ``wake`` (only on the request that signalled a cold start: from the
signal until a ready endpoint released it) and ``forward`` (a CLIENT span from choosing the
backend to the end of the response); the ``forward`` span's context goes to the backend as
``traceparent`` (and ``tracestate``).
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wakeway.model.settings import Address, format_address

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

RawHeaders = list[tuple[bytes, bytes]]
_TRACE_FIELDS = (b"traceparent", b"tracestate")

tracer: Tracer | None = None  # set by enable(); the interceptor checks it once per request
_provider: TracerProvider | None = None


def wanted(env: Mapping[str, str]) -> bool:
    """Whether the OTEL_* variables in ``env`` turn tracing on (see the module docstring)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def enable(service_name: str, provider: TracerProvider | None = None) -> None:
    """Trace from now on: with ``provider`` (tests: the SDK's in-memory exporter), or one that
    exports as ``OTEL_TRACES_EXPORTER`` says (``otlp``, over HTTP/protobuf, by default)."""
    global tracer, _provider
    if provider is None:
        provider = _provider_from_env(service_name)
        atexit.register(provider.shutdown)
    _provider = provider
    tracer = provider.get_tracer("wakeway")


def disable() -> None:
    global tracer, _provider
    tracer, _provider = None, None


def _provider_from_env(service_name: str) -> TracerProvider:
    import os

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    exporter: SpanExporter
    kinds = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    for kind in (k.strip() for k in kinds.split(",")):
        if kind == "console":
            exporter = ConsoleSpanExporter()
        elif kind == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: {kind!r} is not otlp, console or none")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _now_ns() -> int:
    return time.time_ns()


class RequestTrace:
    """The spans of one request; made only while tracing is on."""

    __slots__ = ("_ctx", "forward", "hold", "root", "wake")

    def __init__(self, method: bytes, url: bytes, headers: RawHeaders, seconds_ago: float) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        assert tracer is not None
        carrier = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in headers
            if name.lower() in _TRACE_FIELDS
        }
        parent = TraceContextTextMapPropagator().extract(carrier) if carrier else None
        verb = method.decode("latin-1")
        self.root: Span = tracer.start_span(
            verb,
            context=parent,
            kind=trace.SpanKind.SERVER,
            start_time=_now_ns() - int(seconds_ago * 1e9),
            attributes={
                "http.request.method": verb,
                "url.path": url.partition(b"?")[0].decode("latin-1"),
            },
        )
        self._ctx = trace.set_span_in_context(self.root)
        self.hold: Span | None = None
        self.wake: Span | None = None
        self.forward: Span | None = None

    def _child(self, name: str, **attributes: Any) -> Span:
        assert tracer is not None
        return tracer.start_span(name, context=self._ctx, attributes=attributes)

    def routed(self, target: str, seconds: float) -> None:
        """The routing decision took ``seconds`` and chose ``target`` ("" for none)."""
        end = _now_ns()
        assert tracer is not None
        span = tracer.start_span(
            "route",
            context=self._ctx,
            start_time=end - int(seconds * 1e9),
            attributes={"wakeway.target": target},
        )
        span.end(end)
        if target:
            self.root.set_attribute("wakeway.target", target)

    def held(self, backend: str, first: bool) -> None:
        """The request waits at the cold-start gate; ``first``: it signalled the wake."""
        if self.hold is None:
            self.hold = self._child("hold", **{"wakeway.backend": backend})
        if first and self.wake is None:
            self.wake = self._child("wake", **{"wakeway.backend": backend})

    def released(self, outcome: str) -> None:
        """The wait ended: ``released`` (a ready endpoint), ``expired`` or ``abandoned``."""
        for span in (self.hold, self.wake):
            if span is not None and span.is_recording():
                span.set_attribute("wakeway.outcome", outcome)
                span.end()

    def forwarding(self, addr: Address, headers: RawHeaders) -> RawHeaders:
        """Start the ``forward`` span; the request's fields with its ``traceparent``."""
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        assert tracer is not None
        self.forward = tracer.start_span(
            "forward",
            context=self._ctx,
            kind=trace.SpanKind.CLIENT,
            attributes={"server.address": format_address(addr)},
        )
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(
            carrier, context=trace.set_span_in_context(self.forward)
        )
        kept = [(n, v) for n, v in headers if n.lower() not in _TRACE_FIELDS]
        return kept + [(n.encode(), v.encode()) for n, v in carrier.items()]

    def finished(self, status: int) -> None:
        from opentelemetry.trace import Status, StatusCode

        self.released("abandoned")  # a request that ended while held
        for span in (self.forward, self.root):
            if span is None or not span.is_recording():
                continue
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            span.end()
