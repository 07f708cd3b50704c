"""Early probes: a held request goes to a starting endpoint the moment it accepts connections,
before any endpoint view lists it ready; never when they are off, never to one that left."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.interceptor_helpers import HostRouter, StartInterceptor, backend_key, make_target, until
from wakeway.interceptor import Interceptor
from wakeway.interceptor.probe import EarlyProbes
from wakeway.model.httpso import HTTPScaledObject

pytestmark = pytest.mark.component


class LateServer:
    """An address that refuses connections until ``listen()``, then answers every request
    ``200 late``; counts the connections it accepted."""

    def __init__(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            self.addr: tuple[str, int] = sock.getsockname()[:2]
        # closed: the port is free again, and connecting to it is refused
        self.server: asyncio.Server | None = None
        self.accepted = 0
        self.requests = 0

    async def listen(self) -> None:
        self.server = await asyncio.start_server(self._serve, *self.addr)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def late() -> AsyncIterator[LateServer]:
    server = LateServer()
    yield server
    server.close()


def probes_of(interceptor: Interceptor) -> EarlyProbes:
    probes = interceptor._require_state().probes
    assert probes is not None
    return probes


def held(interceptor: Interceptor, target: HTTPScaledObject) -> int:
    counts = interceptor.counts().get(target.key)
    return counts.held if counts else 0


async def starting_proxy(
    start: StartInterceptor, late: LateServer, **settings: object
) -> tuple[Interceptor, HTTPScaledObject, str]:
    """A target with no ready endpoint and ``late`` listed as starting."""
    target = make_target()
    interceptor: Interceptor = await start(**settings)
    interceptor.set_router(HostRouter({"*": target}))
    key = backend_key(target)
    interceptor.set_endpoints({key: ()}, starting={key: [late.addr]})
    return interceptor, target, f"http://127.0.0.1:{interceptor.proxy_port}"


async def test_a_held_request_goes_to_a_starting_endpoint_as_soon_as_it_accepts(
    start_interceptor: StartInterceptor, late: LateServer, session: aiohttp.ClientSession
) -> None:
    interceptor, target, base = await starting_proxy(
        start_interceptor, late, early_probe_interval=0.01
    )
    request = asyncio.create_task(session.get(f"{base}/x"))
    await until(lambda: held(interceptor, target) == 1)
    await until(lambda: probes_of(interceptor).probes >= 3)  # refused, and tried again
    await late.listen()  # no endpoint view says it is ready: only a probe can find it
    async with asyncio.timeout(5):
        resp = await request
    async with resp:
        assert (resp.status, await resp.text()) == (200, "late")
        assert resp.headers["X-Wakeway-Cold-Start"] == "true"
    assert probes_of(interceptor).probing == []  # found: probing stopped

    # The pod is gone (neither ready nor starting in the next view): nothing goes to it.
    key = backend_key(target)
    interceptor.set_endpoints({key: ()}, starting={})
    second = asyncio.create_task(session.get(f"{base}/y"))
    await until(lambda: held(interceptor, target) == 1)
    assert late.requests == 1
    interceptor.set_endpoints({key: [late.addr]})  # listed ready now: released the usual way
    async with asyncio.timeout(5):
        resp = await second
    async with resp:
        assert resp.status == 200
    assert late.requests == 2


async def test_probing_stops_when_nothing_is_held_any_more(
    start_interceptor: StartInterceptor, late: LateServer
) -> None:
    interceptor, target, _ = await starting_proxy(
        start_interceptor, late, early_probe_interval=0.01
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await until(lambda: probes_of(interceptor).probing == [backend_key(target)])
    writer.close()  # the client leaves: its request is no longer held
    await until(lambda: held(interceptor, target) == 0)
    await until(lambda: probes_of(interceptor).probing == [])
    tried = probes_of(interceptor).probes
    await late.listen()
    assert late.accepted == 0
    assert probes_of(interceptor).probes == tried
    del reader


async def test_without_early_probes_a_starting_endpoint_gets_only_the_forwarded_request(
    start_interceptor: StartInterceptor, late: LateServer, session: aiohttp.ClientSession
) -> None:
    """Off (the default): the request waits for the view that lists the endpoint ready, and
    the backend sees that one connection, no probe before it."""
    interceptor, target, base = await starting_proxy(start_interceptor, late)
    assert interceptor._require_state().probes is None
    await late.listen()
    request = asyncio.create_task(session.get(f"{base}/x"))
    await until(lambda: held(interceptor, target) == 1)
    interceptor.set_endpoints({backend_key(target): [late.addr]})
    async with asyncio.timeout(5):
        resp = await request
    async with resp:
        assert resp.status == 200
    assert (late.accepted, late.requests) == (1, 1)


async def test_an_endpoint_listed_ready_meanwhile_wins_over_the_probe(
    start_interceptor: StartInterceptor, late: LateServer, session: aiohttp.ClientSession
) -> None:
    """The view lists another endpoint ready while a probe is under way: the held request goes
    there, and probing for the backend stops."""
    other = LateServer()
    await other.listen()
    try:
        interceptor, target, base = await starting_proxy(
            start_interceptor, late, early_probe_interval=0.01
        )
        request = asyncio.create_task(session.get(f"{base}/x"))
        await until(lambda: probes_of(interceptor).probes >= 2)
        key = backend_key(target)
        interceptor.set_endpoints({key: [other.addr]}, starting={key: [late.addr]})
        async with asyncio.timeout(5):
            resp = await request
        async with resp:
            assert resp.status == 200
        await until(lambda: probes_of(interceptor).probing == [])
        assert (other.requests, late.accepted) == (1, 0)
    finally:
        other.close()
