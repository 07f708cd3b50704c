"""Admin port and lifecycle: readiness, metrics, the count stream (in-process and NDJSON), drain."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
    until,
    warm_proxy,
)
from tests.metrics_text import build_info, value
from wakeway.interceptor import Interceptor

pytestmark = pytest.mark.component


def admin(interceptor: Interceptor, path: str) -> str:
    return f"http://127.0.0.1:{interceptor.admin_port}{path}"


async def test_livez_and_readyz_follow_router_and_drain(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    interceptor = await start_interceptor()
    async with session.get(admin(interceptor, "/livez")) as resp:
        assert resp.status == 200
    async with session.get(admin(interceptor, "/readyz")) as resp:
        assert resp.status == 503
        assert "no routing table" in await resp.text()
    interceptor.set_router(HostRouter({}))
    async with session.get(admin(interceptor, "/readyz")) as resp:
        assert resp.status == 200
    assert interceptor.ready


async def test_metrics_expose_requests_durations_and_cold_starts(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    base = f"http://127.0.0.1:{interceptor.proxy_port}"
    sub = interceptor.subscribe()
    await sub.get(within=5)  # snapshot
    cold = asyncio.create_task(session.get(f"{base}/echo"))
    while not (await sub.get(within=5)).wake:
        pass
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    (await cold).release()
    async with session.get(f"{base}/status/418") as resp:
        assert resp.status == 418
    async with session.post(f"{base}/echo", data=b"x") as resp:
        assert resp.status == 200
    async with session.request("PROPFIND", f"{base}/echo") as resp:
        assert resp.status == 200
    async with session.get(admin(interceptor, "/metrics")) as resp:
        text = await resp.text()
    app = {"namespace": "test", "name": "app"}

    def requests(method: str, code: str, cold: str) -> float | None:
        labels = {**app, "method": method, "code": code, "cold": cold}
        return value(text, "wakeway_requests_total", **labels)

    assert requests("GET", "200", "true") == 1  # held, then forwarded
    assert requests("GET", "418", "false") == 1
    assert requests("POST", "200", "false") == 1
    assert requests("other", "200", "false") == 1  # no label per method token
    duration = "wakeway_request_duration_seconds"
    warm = {**app, "method": "GET", "code": "418", "cold": "false"}
    assert value(text, f"{duration}_count", **warm) == 1
    # Sub-millisecond buckets at the low end, and buckets past the hold deadline (20 s).
    assert value(text, f"{duration}_bucket", **warm, le="0.0001") is not None
    assert value(text, f"{duration}_bucket", **warm, le="60.0") == 1
    assert value(text, "wakeway_in_flight_requests", **app) == 0
    assert value(text, "wakeway_held_requests", **app) == 0
    assert value(text, "wakeway_cold_starts_total", **app) == 1
    assert value(text, "wakeway_cold_start_wait_seconds_count", **app) == 1
    assert build_info(text)["component"] == "interceptor"
    sub.close()


async def test_in_process_count_stream_snapshot_then_changes_with_immediate_wake(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await warm_proxy(start_interceptor, backend)
    async with session.get(f"{base}/echo") as resp:
        await resp.read()
    sub = interceptor.subscribe()
    first = await sub.get(within=5)
    assert first.kind == "snapshot"
    assert first.counts[target.key].requests == 1
    async with session.get(f"{base}/echo") as resp:
        await resp.read()
    seen: dict[str, Any] = {}
    while seen.get("requests") != 2 or seen.get("in_flight") != 0:
        update = await sub.get(within=5)
        assert update.kind == "change"
        counts = update.counts[target.key]
        seen = {"requests": counts.requests, "in_flight": counts.in_flight}
    # a cold target's first held request is pushed at once, flagged as a wake
    interceptor.set_endpoints({})
    pending = asyncio.create_task(session.get(f"{base}/echo"))
    update = await sub.get(within=5)
    while not update.wake:
        update = await sub.get(within=5)
    assert update.counts[target.key].held == 1
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    (await pending).release()
    sub.close()


async def test_ndjson_count_stream_over_the_admin_port(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await warm_proxy(start_interceptor, backend, counts_heartbeat=0.1)
    async with session.get(admin(interceptor, "/counts")) as stream:
        assert stream.headers["Content-Type"] == "application/x-ndjson"

        async def line() -> dict[str, Any]:
            raw = await asyncio.wait_for(stream.content.readline(), 5)
            doc: dict[str, Any] = json.loads(raw)
            return doc

        snapshot = await line()
        assert snapshot["type"] == "snapshot"
        assert snapshot["targets"] == {}
        beat = await line()
        assert beat["type"] == "heartbeat"
        assert beat["seq"] == snapshot["seq"]
        async with session.get(f"{base}/echo") as resp:
            await resp.read()
        doc = await line()
        while doc["type"] != "change" or doc["targets"][target.key]["inFlight"] != 0:
            doc = await line()
        got = doc["targets"][target.key]
        assert {k: got[k] for k in ("inFlight", "held", "requests")} == {
            "inFlight": 0,
            "held": 0,
            "requests": 1,
        }
        assert 0 < got["busy"] < 5  # the request's time in flight, in seconds


async def test_drain_finishes_in_flight_requests_and_refuses_new_ones(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    interceptor, _, base = await warm_proxy(start_interceptor, backend)
    slow = asyncio.create_task(session.get(f"{base}/wait/drain"))
    await until(lambda: "drain" in backend.gates)
    draining = asyncio.create_task(interceptor.drain_and_stop())
    await until(lambda: not interceptor.ready)
    assert not draining.done()
    backend.gate("drain").set()
    resp = await slow
    assert resp.status == 200
    assert resp.headers.get("Connection") == "close"
    assert await resp.text() == "released\n"
    await asyncio.wait_for(draining, 5)
    with pytest.raises(aiohttp.ClientConnectionError):
        await session.get(f"{base}/echo")


async def test_drain_timeout_answers_held_requests_503_with_retry_after(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    held = asyncio.create_task(session.get(f"http://127.0.0.1:{interceptor.proxy_port}/"))
    await until(lambda: target.key in interceptor.counts())
    await until(lambda: interceptor.counts()[target.key].held == 1)
    await interceptor.drain_and_stop(drain_timeout=0.1)
    async with await held as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "1"
        assert await resp.text() == "this interceptor is shutting down\n"
