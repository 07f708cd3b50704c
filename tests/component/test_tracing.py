"""OpenTelemetry tracing against a real interceptor and backend, with the SDK's in-memory
exporter: the spans of a cold request and the traceparent the backend receives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
)
from wakeway.observe import tracing

pytestmark = pytest.mark.component

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.enable("wakeway-interceptor", provider)
    try:
        yield exporter
    finally:
        tracing.disable()


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    out = {span.name: span for span in finished}
    assert len(out) == len(finished), [s.name for s in finished]
    return out


async def test_a_cold_request_is_traced_and_its_traceparent_reaches_the_backend(
    spans: InMemorySpanExporter,
    start_interceptor: StartInterceptor,
    backend: Backend,
    session: aiohttp.ClientSession,
) -> None:
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    sub = interceptor.subscribe()
    await sub.get(within=5)  # snapshot
    url = f"http://127.0.0.1:{interceptor.proxy_port}/echo?x=1"
    cold = asyncio.create_task(session.get(url, headers={"traceparent": CALLER}))
    while not (await sub.get(within=5)).wake:
        pass
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    async with await cold as resp:
        assert resp.status == 200
        echoed = {k.lower(): v for k, v in (await resp.json())["headers"]}
    sub.close()

    s = by_name(spans.get_finished_spans())
    assert set(s) == {"GET", "route", "hold", "wake", "forward"}
    root = s["GET"]
    assert root.kind is SpanKind.SERVER
    assert root.context is not None
    assert format(root.context.trace_id, "032x") == CALLER_TRACE  # the caller's trace goes on
    assert root.parent is not None
    assert format(root.parent.span_id, "016x") == "00f067aa0ba902b7"
    for name in ("route", "hold", "wake", "forward"):
        parent = s[name].parent
        assert parent is not None
        assert parent.span_id == root.context.span_id, name
    assert s["route"].attributes == {"wakeway.target": "test/app"}
    assert s["hold"].attributes is not None
    assert s["hold"].attributes["wakeway.outcome"] == "released"
    forward = s["forward"]
    assert forward.kind is SpanKind.CLIENT
    assert forward.attributes is not None
    assert forward.attributes["http.response.status_code"] == 200
    assert root.attributes is not None
    assert root.attributes["url.path"] == "/echo"
    # The backend got the forward span's context, in the caller's trace.
    assert forward.context is not None
    span_id = format(forward.context.span_id, "016x")
    assert echoed["traceparent"] == f"00-{CALLER_TRACE}-{span_id}-01"
    assert root.start_time is not None
    assert forward.end_time is not None
    assert root.start_time <= s["hold"].start_time <= forward.end_time  # type: ignore[operator]


async def test_a_warm_request_without_a_caller_starts_a_trace(
    spans: InMemorySpanExporter,
    start_interceptor: StartInterceptor,
    backend: Backend,
    session: aiohttp.ClientSession,
) -> None:
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    async with session.get(f"http://127.0.0.1:{interceptor.proxy_port}/echo") as resp:
        echoed = {k.lower(): v for k, v in (await resp.json())["headers"]}
    s = by_name(spans.get_finished_spans())
    assert set(s) == {"GET", "route", "forward"}
    assert s["GET"].parent is None
    assert s["forward"].context is not None
    trace_id = format(s["forward"].context.trace_id, "032x")
    assert echoed["traceparent"].split("-")[1] == trace_id


def test_tracing_is_off_unless_the_otel_variables_ask() -> None:
    assert tracing.wanted({}) is False
    assert tracing.wanted({"OTEL_SERVICE_NAME": "x"}) is False
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) is True
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "console"}) is True
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "none"}) is False
    on = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
    assert tracing.wanted(on) is False
