"""``workers`` > 1: the proxy listener served by worker processes, counts summed by this one.

The interceptor under test runs in the test's process (the primary: admin port, count stream,
routing table); its workers are real processes on real sockets.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
    until,
)
from wakeway.interceptor import Interceptor
from wakeway.interceptor.workers import WorkerGroup
from wakeway.model.httpso import HTTPScaledObject
from wakeway.scaler.aggregate import Aggregator
from wakeway.scaler.wire import parse_line

pytestmark = pytest.mark.component

START = 30.0  # starting worker processes imports the proxy once per process


def group_of(interceptor: Interceptor) -> WorkerGroup:
    group = interceptor.workers
    assert group is not None
    return group


async def two_workers(start: StartInterceptor, target: HTTPScaledObject) -> Interceptor:
    interceptor = await start(workers=2)
    interceptor.set_router(HostRouter({"*": target}))
    await until(lambda: interceptor.ready, within=START)
    assert len(group_of(interceptor).pids()) == 2
    return interceptor


def per_worker(interceptor: Interceptor, target: HTTPScaledObject) -> dict[int, tuple[int, ...]]:
    by_worker = group_of(interceptor).counts.by_worker()
    return {w: counts.get(target.key, (0, 0, 0)) for w, counts in by_worker.items()}


def held(interceptor: Interceptor, target: HTTPScaledObject) -> int:
    counts = interceptor.counts().get(target.key)
    return counts.held if counts else 0


def settled(interceptor: Interceptor, target: HTTPScaledObject, requests: int) -> bool:
    counts = interceptor.counts().get(target.key)
    return counts is not None and (counts.in_flight, counts.requests) == (0, requests)


async def get(port: int) -> tuple[int, bytes]:
    """One GET on a connection of its own (no client retries): status and body; (0, b"")
    when the connection was lost before an answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
    try:
        answer = await reader.read(-1)
    except ConnectionError:
        return 0, b""
    finally:
        writer.close()
    if not answer:
        return 0, b""
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head + b"\r\n\r\n" + body


async def hold_in_both(
    interceptor: Interceptor, target: HTTPScaledObject
) -> list[asyncio.Task[tuple[int, bytes]]]:
    """Requests held for ``target`` (one connection each) until both workers hold some."""
    requests: list[asyncio.Task[tuple[int, bytes]]] = []
    holding: list[int] = []
    while len(requests) < 40:  # bounded; stops once both workers hold some
        requests.append(asyncio.create_task(get(interceptor.proxy_port)))
        n = len(requests)
        await until(lambda: held(interceptor, target) == n)  # noqa: B023 (awaited here)
        holding = [c[1] for c in per_worker(interceptor, target).values()]
        if len(holding) == 2 and min(holding) > 0:
            return requests
    raise AssertionError(f"40 connections, one worker held them all: {holding}")


class ScalerSide:
    """Reads the admin port's ``/counts`` as the scaler does, into the scaler's aggregator."""

    def __init__(self, session: aiohttp.ClientSession, admin_port: int) -> None:
        self.aggregator = Aggregator(stale_after=30.0)
        self.url = f"http://127.0.0.1:{admin_port}/counts"
        self.session = session
        self.wakes: list[str] = []
        self.task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async with self.session.get(self.url) as resp:
            async for raw in resp.content:
                line = parse_line(raw)
                self.aggregator.apply("interceptor-0", line, time.monotonic())
                self.wakes.extend(self.aggregator.take_woken())

    def __enter__(self) -> ScalerSide:
        self.task = asyncio.create_task(self._read())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()


@pytest.fixture
async def session_pool() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that opens a new connection per request (so the kernel spreads them)."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as s:
        yield s


async def test_connections_spread_over_both_workers_and_every_request_is_counted(
    start_interceptor: StartInterceptor, backend: Backend, session_pool: aiohttp.ClientSession
) -> None:
    target = make_target()
    interceptor = await two_workers(start_interceptor, target)
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    base = f"http://127.0.0.1:{interceptor.proxy_port}"

    async def call() -> int:
        async with session_pool.get(f"{base}/echo") as resp:
            await resp.read()
            return resp.status

    sent = 0
    for _ in range(10):  # bounded: 10 rounds of 20 connections
        statuses = await asyncio.gather(*(call() for _ in range(20)))
        assert set(statuses) == {200}
        sent += len(statuses)
        await until(lambda: settled(interceptor, target, sent))  # noqa: B023 (awaited here)
        served = [c[2] for c in per_worker(interceptor, target).values()]
        if len(served) == 2 and min(served) > 0:
            break
    served = [c[2] for c in per_worker(interceptor, target).values()]
    assert len(served) == 2, served
    assert min(served) > 0, served
    assert sum(served) == sent
    counts = interceptor.counts()[target.key]
    assert (counts.in_flight, counts.held, counts.requests) == (0, 0, sent)
    assert counts.idle_since is not None
    metrics = await interceptor.metrics_text()
    assert (
        f'code="200",cold="false",method="GET",name="app",namespace="test"}} {sent}.0'.encode()
        in metrics
    )
    assert metrics.count(b"\nwakeway_build_info{") == 1


async def test_a_held_request_is_seen_once_by_the_scaler_and_released_through_a_worker(
    start_interceptor: StartInterceptor,
    backend: Backend,
    session: aiohttp.ClientSession,
) -> None:
    target = make_target()
    interceptor = await two_workers(start_interceptor, target)
    base = f"http://127.0.0.1:{interceptor.proxy_port}"
    with ScalerSide(session, interceptor.admin_port) as scaler:
        await until(lambda: scaler.aggregator.replicas)  # its snapshot is in
        request = asyncio.create_task(session.get(f"{base}/echo"))
        await until(lambda: scaler.aggregator.held(target.key) == 1)
        assert scaler.aggregator.concurrency(target.key) == 1
        assert scaler.wakes == [target.key]
        interceptor.set_endpoints({backend_key(target): [backend.addr]})
        resp = await request
        assert resp.status == 200
        assert resp.headers["X-Wakeway-Cold-Start"] == "true"
        resp.release()
        await until(lambda: scaler.aggregator.concurrency(target.key) == 0)
        assert scaler.aggregator.held(target.key) == 0
    counts = interceptor.counts()[target.key]
    assert (counts.in_flight, counts.held, counts.requests) == (0, 0, 1)


async def test_a_cold_start_releases_requests_held_in_both_workers(
    start_interceptor: StartInterceptor, backend: Backend, session_pool: aiohttp.ClientSession
) -> None:
    target = make_target()
    interceptor = await two_workers(start_interceptor, target)
    woken: list[str] = []
    interceptor.on_cold(lambda t: woken.append(t.key))
    requests = await hold_in_both(interceptor, target)
    assert woken  # each worker's first held request says so
    assert set(woken) == {target.key}
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    for status, answer in await asyncio.gather(*requests):
        assert status == 200
        assert b"\r\nX-Wakeway-Cold-Start: true\r\n" in answer
    await until(lambda: settled(interceptor, target, len(requests)))


async def test_a_routing_table_swap_and_held_answers_reach_every_worker(
    start_interceptor: StartInterceptor, backend: Backend, session_pool: aiohttp.ClientSession
) -> None:
    old, new = make_target("old"), make_target("new")
    interceptor = await two_workers(start_interceptor, old)
    requests = await hold_in_both(interceptor, old)
    base = f"http://127.0.0.1:{interceptor.proxy_port}"
    interceptor.fail_held(old.key, 503, "old is gone")
    for status, answer in await asyncio.gather(*requests):
        assert status == 503
        assert answer.endswith(b"\r\n\r\nold is gone\n")
    interceptor.set_router(HostRouter({"*": new}))
    interceptor.set_endpoints({backend_key(new): [backend.addr]})
    await until(lambda: group_of(interceptor).in_step)
    for _ in range(20):
        async with session_pool.get(f"{base}/echo") as resp:
            assert resp.status == 200
    await until(lambda: settled(interceptor, new, 20))


async def test_a_killed_worker_comes_back_and_its_counts_are_dropped(
    start_interceptor: StartInterceptor, backend: Backend, session_pool: aiohttp.ClientSession
) -> None:
    target = make_target()
    interceptor = await two_workers(start_interceptor, target)
    group = group_of(interceptor)
    requests = await hold_in_both(interceptor, target)
    base = f"http://127.0.0.1:{interceptor.proxy_port}"
    holding = per_worker(interceptor, target)
    victim = min(holding)
    lost = holding[victim][1]
    kept = len(requests) - lost
    assert lost > 0
    assert kept > 0
    pid = group.workers[victim].proc.pid
    os.kill(pid, signal.SIGKILL)
    await until(lambda: held(interceptor, target) == kept, within=START)
    assert interceptor.counts()[target.key].in_flight == kept
    await until(lambda: len(group.pids()) == 2 and pid not in group.pids(), within=START)
    await until(lambda: interceptor.ready, within=START)
    assert group.restarts == 1
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    statuses = sorted(status for status, _ in await asyncio.gather(*requests))
    assert statuses == [0] * lost + [200] * kept  # the killed worker's clients lost theirs
    for _ in range(20):  # the new worker serves too (and both are counted)
        async with session_pool.get(f"{base}/echo") as resp:
            assert resp.status == 200
    await until(lambda: settled(interceptor, target, len(requests) + 20))
    counts = interceptor.counts()[target.key]
    assert (counts.in_flight, counts.held) == (0, 0)
