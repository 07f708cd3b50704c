"""The scaler's /metrics: its gRPC calls, count streams, open streams and busy targets; and
/targets, each target's requests in flight and held."""

from __future__ import annotations

import grpc
import pytest

from tests.component.test_scaler_grpc import (
    REF,
    TARGET,
    Harness,
    admin_address,
    cold_interceptor,
    harness,
    read,
    subscribed,
)
from tests.interceptor_helpers import StartInterceptor, until
from tests.metrics_text import build_info, value
from wakeway.observe.metrics import serve_metrics, version
from wakeway.protocol import externalscaler_pb2 as pb
from wakeway.scaler.metrics import targets_handler

pytestmark = pytest.mark.component
__all__ = ["harness"]  # the fixture


async def scrape(h: Harness) -> str:
    runner = await serve_metrics(h.scaler.registry, "127.0.0.1", 0)
    try:
        port = runner.addresses[0][1]
        async with h.http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            return await resp.text()
    finally:
        await runner.cleanup()


async def test_calls_streams_replicas_and_targets_are_counted(
    harness: Harness, start_interceptor: StartInterceptor
) -> None:
    interceptor = await cold_interceptor(start_interceptor)
    await subscribed(harness, admin_address(interceptor))
    stream = harness.stub.StreamIsActive(REF)
    assert (await read(stream)).result is False
    harness.hold(interceptor.proxy_port)
    assert (await read(stream)).result is True
    for _ in range(2):
        await harness.stub.IsActive(REF)
    await harness.metric()
    bad = pb.ScaledObjectRef(name="x", namespace="test", scalerMetadata={"metric": "nonsense"})
    with pytest.raises(grpc.aio.AioRpcError):
        await harness.stub.IsActive(bad)

    text = await scrape(harness)
    assert value(text, "wakeway_scaler_grpc_calls_total", method="IsActive", code="OK") == 2
    assert (
        value(text, "wakeway_scaler_grpc_calls_total", method="IsActive", code="INVALID_ARGUMENT")
        == 1
    )
    assert value(text, "wakeway_scaler_grpc_calls_total", method="GetMetrics", code="OK") == 1
    assert value(text, "wakeway_scaler_grpc_call_duration_seconds_count", method="IsActive") == 2
    assert value(text, "wakeway_scaler_active_streams") == 1
    assert value(text, "wakeway_scaler_interceptors") == 1
    assert value(text, "wakeway_scaler_interceptors_reporting") == 1
    assert value(text, "wakeway_scaler_targets", state="held") == 1
    assert value(text, "wakeway_scaler_wakes_seen_total") == 1
    connects = value(text, "wakeway_scaler_count_stream_connects_total")
    assert connects is not None
    assert connects >= 1
    info = build_info(text)
    assert (info["component"], info["version"]) == ("scaler", version())

    stream.cancel()
    ended = ("StreamIsActive", "CANCELLED")
    await until(lambda: harness.scaler.calls.calls.get(ended) == 1)
    text = await scrape(harness)
    assert value(text, "wakeway_scaler_active_streams") == 0
    assert value(text, "wakeway_scaler_grpc_calls_total", method=ended[0], code=ended[1]) == 1


async def test_targets_lists_each_busy_target_and_filters_by_namespace(
    harness: Harness, start_interceptor: StartInterceptor
) -> None:
    interceptor = await cold_interceptor(start_interceptor)
    await subscribed(harness, admin_address(interceptor))
    routes = {"/targets": targets_handler(harness.scaler.live)}
    runner = await serve_metrics(harness.scaler.registry, "127.0.0.1", 0, routes)
    port = runner.addresses[0][1]

    async def targets(query: str = "") -> object:
        async with harness.http.get(f"http://127.0.0.1:{port}/targets{query}") as resp:
            assert resp.status == 200
            assert resp.content_type == "application/json"
            return await resp.json()

    try:
        assert await targets() == {"replicas": 1, "targets": {}}
        harness.hold(interceptor.proxy_port, n=2)
        await until(lambda: harness.scaler.live.aggregator.held(TARGET.key) == 2)
        busy = {TARGET.key: {"inFlight": 2, "held": 2}}  # a held request is in flight too
        assert await targets() == {"replicas": 1, "targets": busy}
        namespace = TARGET.key.partition("/")[0]
        assert await targets(f"?namespace={namespace}") == {"replicas": 1, "targets": busy}
        assert await targets("?namespace=elsewhere") == {"replicas": 1, "targets": {}}
    finally:
        await runner.cleanup()
