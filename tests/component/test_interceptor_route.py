"""An InterceptorRoute for real on loopback: the interceptor routes by its rules and holds for
it; the scaler, asked the way KEDA asks for a ScaledObject whose ``external-push`` trigger names
the route (``interceptorRoute``), answers every RPC with the route's own metrics; and a
placeholder is answered at once while the request still wakes the target.

Waits are bounded stream reads and polls; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc
import pytest

from tests.interceptor_helpers import Backend, StartInterceptor, backend_key, until
from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.interceptorroute import parse_interceptorroute
from wakeway.protocol import externalscaler_pb2 as pb
from wakeway.protocol.externalscaler_pb2_grpc import ExternalScalerStub
from wakeway.routing import RoutingTable
from wakeway.scaler import ReplicaSet, Scaler, ScalerSettings
from wakeway.scaler.routes import StaticRoutes

if TYPE_CHECKING:
    from wakeway.protocol.externalscaler_pb2_grpc import ExternalScalerAsyncStub

pytestmark = pytest.mark.component

SETTINGS = ScalerSettings(
    listen_host="127.0.0.1",
    listen_port=0,
    stale_after=2.0,
    reconnect_min=0.05,
    reconnect_max=0.2,
    connect_timeout=1.0,
    stream_resend=30.0,
)


def interceptor_route(name: str = "web", **spec: Any) -> HTTPScaledObject:
    body: dict[str, Any] = {
        "target": {"service": f"{name}-svc", "port": 8080},
        "rules": [{"hosts": [f"{name}.example.com"], "paths": [{"value": "/"}]}],
        "scalingMetric": {
            "concurrency": {"targetValue": 2},
            "requestRate": {"targetValue": 5, "window": "10s"},
        },
    }
    body.update(spec)
    return parse_interceptorroute(
        {
            "apiVersion": "http.keda.sh/v1beta1",
            "kind": "InterceptorRoute",
            "metadata": {"name": name, "namespace": "test"},
            "spec": body,
        }
    )


ROUTE = interceptor_route()
# What KEDA sends for the user's ScaledObject: only the route's name and the scaler's address.
REF = pb.ScaledObjectRef(
    name="web-so",
    namespace="test",
    scalerMetadata={"interceptorRoute": "web", "scalerAddress": "wakeway-scaler:9091"},
)


@pytest.fixture
async def scaler() -> AsyncIterator[tuple[Scaler, ReplicaSet, ExternalScalerAsyncStub]]:
    replicas = ReplicaSet()
    s = Scaler(SETTINGS, replicas, StaticRoutes([ROUTE]))
    await s.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{s.port}")
    try:
        yield s, replicas, ExternalScalerStub(channel)
    finally:
        await channel.close(None)
        await s.stop(grace=0.1)


async def read(call: Any) -> pb.IsActiveResponse:
    async with asyncio.timeout(10):
        response: pb.IsActiveResponse = await call.read()
    return response


async def _get(port: int, host: str, path: str = "/echo") -> tuple[int, str, dict[str, str]]:
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}) as resp,
    ):
        return resp.status, await resp.text(), dict(resp.headers)


async def test_keda_asking_about_the_route_gets_its_metrics_and_a_held_request_wakes_it(
    scaler: tuple[Scaler, ReplicaSet, ExternalScalerAsyncStub],
    start_interceptor: StartInterceptor,
    backend: Backend,
) -> None:
    s, replicas, stub = scaler
    specs = (await stub.GetMetricSpec(REF)).metricSpecs
    assert [(m.metricName, m.targetSize, m.targetSizeFloat) for m in specs] == [
        ("http_web_concurrency", 2, 2.0),
        ("http_web_rate", 5, 5.0),
    ]
    interceptor = await start_interceptor()
    interceptor.set_router(RoutingTable([ROUTE]))
    replicas.set([f"127.0.0.1:{interceptor.admin_port}"])
    await until(lambda: bool(s.live.aggregator.replicas))
    stream = stub.StreamIsActive(REF)
    assert (await read(stream)).result is False

    held = asyncio.create_task(_get(interceptor.proxy_port, "web.example.com"))
    assert (await read(stream)).result is True  # pushed: the first held request
    assert (await stub.IsActive(REF)).result is True
    every = await stub.GetMetrics(pb.GetMetricsRequest(scaledObjectRef=REF))
    assert [v.metricName for v in every.metricValues] == ["http_web_concurrency", "http_web_rate"]
    assert every.metricValues[0].metricValueFloat == 1.0
    one = await stub.GetMetrics(
        pb.GetMetricsRequest(scaledObjectRef=REF, metricName="s1-http_web_rate")
    )
    assert [v.metricName for v in one.metricValues] == ["http_web_rate"]
    assert one.metricValues[0].metricValueFloat > 0

    interceptor.set_endpoints({backend_key(ROUTE): [backend.addr]})
    async with asyncio.timeout(10):
        status, _, _ = await held
    assert status == 200
    # A host no rule names is not this route's.
    assert (await _get(interceptor.proxy_port, "other.example.com"))[0] == 404
    stream.cancel()


async def test_a_route_the_scaler_does_not_know_is_not_found(
    scaler: tuple[Scaler, ReplicaSet, ExternalScalerAsyncStub],
) -> None:
    _, _, stub = scaler
    missing = pb.ScaledObjectRef(
        name="x", namespace="test", scalerMetadata={"interceptorRoute": "x"}
    )
    for call in (stub.IsActive(missing), stub.GetMetricSpec(missing)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no InterceptorRoute test/x" in (info.value.details() or "")


async def test_a_placeholder_answers_at_once_as_written_and_the_request_wakes_the_target(
    start_interceptor: StartInterceptor,
) -> None:
    placeholder = {
        "statusCode": 202,
        "body": "warming up",
        "headers": {"Content-Type": "text/html", "X-Why": "cold"},
    }
    route = interceptor_route(coldStart={"placeholder": {"response": placeholder}})
    interceptor = await start_interceptor(condition_wait=30.0)
    interceptor.set_router(RoutingTable([route]))
    woken: list[str] = []
    interceptor.on_cold(lambda target: woken.append(target.key))
    async with asyncio.timeout(10):  # far less than the 30 s hold deadline
        status, body, headers = await _get(interceptor.proxy_port, "web.example.com")
    assert (status, body) == (202, "warming up")
    assert headers["Content-Type"] == "text/html"
    assert headers["X-Why"] == "cold"
    assert woken == ["test/web"]
