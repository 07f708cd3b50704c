"""The cold-start gate for real: hold, release on endpoints, limits, deadline, fallbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import aiohttp
import pytest

from tests.interceptor_helpers import (
    TEST_SETTINGS,
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
    pattern_chunks,
    pattern_sha256,
    raw_exchange,
    until,
)
from wakeway.interceptor import Interceptor
from wakeway.model.httpso import FailoverRef, HTTPScaledObject, PortRef

pytestmark = pytest.mark.component


async def cold_proxy(
    start: StartInterceptor, target: HTTPScaledObject | None = None, **settings: object
) -> tuple[Interceptor, HTTPScaledObject, str]:
    target = target or make_target()
    interceptor: Interceptor = await start(**settings)
    interceptor.set_router(HostRouter({"*": target}))
    return interceptor, target, f"http://127.0.0.1:{interceptor.proxy_port}"


def held(interceptor: Interceptor, target: HTTPScaledObject) -> int:
    counts = interceptor.counts().get(target.key)
    return counts.held if counts else 0


async def test_held_requests_are_released_when_endpoints_appear(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await cold_proxy(start_interceptor)
    woken: list[str] = []
    interceptor.on_cold(lambda t: woken.append(t.key))

    async def call(i: int) -> tuple[int, str, str]:
        async with session.post(f"{base}/echo", data=f"payload-{i}") as resp:
            return resp.status, resp.headers["X-Wakeway-Cold-Start"], (await resp.json())["body"]

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(call(i)))
        await until(lambda n=i + 1: held(interceptor, target) == n)  # type: ignore[misc]
    assert woken == [target.key]
    counts = interceptor.counts()[target.key]
    assert (counts.in_flight, counts.held, counts.requests) == (5, 5, 5)
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    results = await asyncio.gather(*tasks)
    assert results == [(200, "true", f"payload-{i}") for i in range(5)]
    counts = interceptor.counts()[target.key]
    assert (counts.in_flight, counts.held, counts.requests) == (0, 0, 5)
    # warm now
    async with session.get(f"{base}/echo") as resp:
        assert resp.headers["X-Wakeway-Cold-Start"] == "false"


async def test_overflow_per_target_and_global_gets_503_with_reason(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    target = make_target(coldStart={"maxHeldRequests": 2})
    other = make_target("other", "other-svc")
    interceptor = await start_interceptor(max_held_total=3)
    interceptor.set_router(HostRouter({"a": target, "b": other}))
    base = f"http://127.0.0.1:{interceptor.proxy_port}"

    async def call(host: str) -> tuple[int, str, str | None]:
        async with session.get(f"{base}/", headers={"Host": host}) as resp:
            return resp.status, await resp.text(), resp.headers.get("Retry-After")

    pending = [asyncio.create_task(call("a")) for _ in range(2)]
    await until(lambda: held(interceptor, target) == 2)
    status, body, retry = await call("a")
    assert status == 503
    assert "test/app is not ready and already holds 2 waiting requests (limit 2)" in body
    assert retry is not None
    assert int(retry) >= 1
    pending.append(asyncio.create_task(call("b")))
    await until(lambda: held(interceptor, other) == 1)
    status, body, _ = await call("b")
    assert status == 503
    assert "holds 3 waiting requests in all (limit 3)" in body
    for task in pending:
        task.cancel()


async def test_deadline_without_fallback_is_504(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await cold_proxy(
        start_interceptor, make_target(timeouts={"conditionWait": "200ms"})
    )
    async with session.get(f"{base}/") as resp:
        assert resp.status == 504
        assert "test/app did not become ready within 0.2 s" in await resp.text()
        assert resp.headers["X-Wakeway-Cold-Start"] == "true"
    assert held(interceptor, target) == 0


async def test_deadline_with_failover_forwards_to_the_failover_backend(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    target = replace(make_target(), failover=FailoverRef(PortRef("fallback", 80), 0.2))
    interceptor, _, base = await cold_proxy(start_interceptor, target)
    interceptor.set_endpoints({"test/fallback:80": [backend.addr]})
    async with session.get(f"{base}/echo?via=failover") as resp:
        assert resp.status == 200
        assert (await resp.json())["path"] == "/echo?via=failover"


async def test_placeholder_page_for_browsers_and_configured_body_for_others(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    target = make_target(
        timeouts={"conditionWait": "100ms"},
        coldStart={"placeholder": {"status": 202, "body": "warming up", "refreshSeconds": 3}},
    )
    _, _, base = await cold_proxy(start_interceptor, target)
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    async with session.get(f"{base}/", headers=browser) as resp:
        assert resp.status == 202
        assert resp.headers["Content-Type"].startswith("text/html")
        assert resp.headers["Refresh"] == "3"
        page = await resp.text()
        assert '<meta http-equiv="refresh" content="3">' in page
        assert "warming up" in page
    async with session.get(f"{base}/", headers={"Accept": "application/json"}) as resp:
        assert resp.status == 202
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert await resp.text() == "warming up"


async def test_cold_websocket_is_held_then_upgraded(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await cold_proxy(start_interceptor)
    connecting = asyncio.create_task(session.ws_connect(f"{base}/ws"))
    await until(lambda: held(interceptor, target) == 1)
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    ws = await connecting
    try:
        await ws.send_str("cold")
        assert await ws.receive_str(timeout=5) == "echo:cold"
    finally:
        await ws.close()


async def test_client_leaving_while_held_is_forgotten(start_interceptor: StartInterceptor) -> None:
    interceptor, target, _ = await cold_proxy(start_interceptor)
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await until(lambda: held(interceptor, target) == 1)
    writer.close()
    await until(lambda: interceptor.counts()[target.key].in_flight == 0)
    assert held(interceptor, target) == 0
    del reader


async def test_fail_held_answers_with_the_reason(start_interceptor: StartInterceptor) -> None:
    interceptor, target, _ = await cold_proxy(start_interceptor)
    answer = asyncio.create_task(
        raw_exchange(
            interceptor.proxy_port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
    )
    await until(lambda: held(interceptor, target) == 1)
    assert interceptor.fail_held(target.key, 502, "workload app failed to start: exit 1") == 1
    raw = await answer
    assert raw.startswith(b"HTTP/1.1 502 ")
    assert raw.endswith(b"workload app failed to start: exit 1\n")


async def test_cold_start_header_can_be_turned_off(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    for settings, spec in (({"cold_start_header": False}, {}), ({}, {"responseHeader": False})):
        target = make_target(coldStart=spec)
        interceptor = await start_interceptor(**settings)
        interceptor.set_router(HostRouter({"*": target}))
        interceptor.set_endpoints({backend_key(target): [backend.addr]})
        async with session.get(f"http://127.0.0.1:{interceptor.proxy_port}/echo") as resp:
            assert resp.status == 200
            assert "X-Wakeway-Cold-Start" not in resp.headers


def _dead_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connections to it are refused


async def test_refusing_endpoint_is_skipped_for_another_ready_one(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await cold_proxy(start_interceptor)
    dead = ("127.0.0.1", _dead_port())
    interceptor.set_endpoints({backend_key(target): [dead, backend.addr]})
    for _ in range(4):  # round robin would pick the dead one every other time
        async with session.post(f"{base}/echo", data=b"x") as resp:
            assert resp.status == 200
            assert resp.headers["X-Wakeway-Cold-Start"] == "false"


async def test_request_refused_by_its_only_endpoint_waits_for_the_next_one(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    # A pod being removed can refuse before its EndpointSlice says so: the request was not
    # sent, so it goes back to the gate and is served by the next ready endpoint.
    interceptor, target, base = await cold_proxy(start_interceptor)
    interceptor.set_endpoints({backend_key(target): [("127.0.0.1", _dead_port())]})
    pending = asyncio.create_task(session.post(f"{base}/echo", data=b"not lost"))
    await until(lambda: held(interceptor, target) == 1)
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    async with await pending as resp:
        assert resp.status == 200
        assert (await resp.json())["body"] == "not lost"


async def test_a_cold_callback_may_answer_the_request_at_once(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    """What Kubernetes mode does for a target whose workload is missing: each request that
    would be held is answered from the cold callback, every time, and nothing stays held."""
    interceptor, target, base = await cold_proxy(start_interceptor)
    interceptor.on_cold(lambda t: interceptor.fail_held(t.key, 503, f"{t.key}: workload gone"))
    for _ in range(3):
        async with session.get(f"{base}/") as resp:
            assert resp.status == 503
            assert await resp.text() == f"{target.key}: workload gone\n"
    assert held(interceptor, target) == 0


async def test_a_request_held_again_keeps_its_first_readiness_deadline(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await cold_proxy(start_interceptor)
    gate = interceptor._require_state().gate
    pending = asyncio.create_task(session.get(f"{base}/"))
    await until(lambda: held(interceptor, target) == 1)
    first = gate.next_deadline()
    # Released to an endpoint that refuses: the request was not sent, so it is held again.
    interceptor.set_endpoints({backend_key(target): [("127.0.0.1", _dead_port())]})
    assert held(interceptor, target) == 0
    await until(lambda: held(interceptor, target) == 1)
    assert gate.next_deadline() == first
    pending.cancel()


async def test_a_cold_callback_removed_after_start_is_not_called(
    session: aiohttp.ClientSession,
) -> None:
    interceptor = Interceptor(TEST_SETTINGS)
    kept: list[str] = []
    removed: list[str] = []
    interceptor.on_cold(lambda t: kept.append(t.key))
    remove = interceptor.on_cold(lambda t: removed.append(t.key))
    await interceptor.start()
    try:
        remove()
        target = make_target(timeouts={"conditionWait": "100ms"})
        interceptor.set_router(HostRouter({"*": target}))
        async with session.get(f"http://127.0.0.1:{interceptor.proxy_port}/") as resp:
            assert resp.status == 504
        assert (kept, removed) == ([target.key], [])
    finally:
        await interceptor.drain_and_stop(drain_timeout=0.5)


async def test_a_refused_endpoint_is_forgotten_when_its_skip_ends_without_a_request(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await cold_proxy(start_interceptor, refused_endpoint_skip=0.05)
    dead = ("127.0.0.1", _dead_port())
    interceptor.set_endpoints({backend_key(target): [dead, backend.addr]})
    refused = interceptor._require_state()._refused
    for _ in range(2):  # round robin: the dead one is tried within two requests
        async with session.get(f"{base}/echo") as resp:
            assert resp.status == 200
    assert list(refused) == [dead]
    await until(lambda: not refused)  # no request picks an endpoint meanwhile


async def test_a_request_held_again_while_draining_is_answered_503_at_once(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    """A drain keeps serving what is under way, but nothing is held anew: a request whose
    only endpoint refused it during the drain gets 503 + Retry-After at once, not when the
    drain times out."""
    interceptor, target, base = await cold_proxy(start_interceptor, refused_endpoint_skip=0.05)
    interceptor.set_endpoints({backend_key(target): [("127.0.0.1", _dead_port())]})
    pending = asyncio.create_task(session.get(f"{base}/"))
    await until(lambda: held(interceptor, target) == 1)  # refused once, held again
    draining = asyncio.create_task(interceptor.drain_and_stop(drain_timeout=30))
    await until(lambda: interceptor.draining)
    # When the skip ends the request is released, refused again, and may not be held again.
    async with asyncio.timeout(10):
        async with await pending as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "1"
            text = await resp.text()
    assert text == f"{target.key} is not ready and this interceptor is shutting down\n"
    await asyncio.wait_for(draining, 5)


async def test_a_held_request_body_is_buffered_only_up_to_the_limit_then_arrives_whole(
    start_interceptor: StartInterceptor, backend: Backend
) -> None:
    """While a request is held, its body is read only up to max_buffered_body: then reading
    from the client stops (back-pressure), so a large upload does not sit in memory; once the
    backend is ready the whole body arrives, byte for byte."""
    limit, size = 64 * 1024, 64 * 1024 * 1024
    interceptor, target, _ = await cold_proxy(start_interceptor, max_buffered_body=limit)
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    head = (
        f"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode())
    chunks = pattern_chunks(size)
    sent = 0

    async def push() -> None:
        nonlocal sent
        for piece in chunks:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)

    pushing = asyncio.create_task(push())
    await until(lambda: held(interceptor, target) == 1)
    # The writer stalls: the interceptor stopped reading once the buffer limit was reached.
    stalled = await _stalls(lambda: sent)
    assert stalled < size // 4, f"{stalled} bytes taken while held: no back-pressure"
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    async with asyncio.timeout(60):
        await pushing
        raw = await reader.read(-1)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    assert f'"sha256": "{pattern_sha256(size)}"'.encode() in raw


async def _stalls(progress: Callable[[], int]) -> int:
    """The count ``progress`` stops at: it stays the same over ten loop turns 20 ms apart."""
    last, same = -1, 0
    async with asyncio.timeout(30):
        while same < 10:
            now = progress()
            same = same + 1 if now == last else 0
            last = now
            await asyncio.sleep(0.02)
    return last
