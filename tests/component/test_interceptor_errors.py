"""Rejections and failures: smuggling, limits, slow clients, broken or slow backends."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiohttp
import pytest

from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
    raw_exchange,
    until,
    warm_proxy,
)
from wakeway.interceptor.upstream import Pool

pytestmark = pytest.mark.component


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /echo HTTP/1.1\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nHost : a\r\n\r\n",
    ],
    ids=[
        "cl-and-te",
        "two-cl",
        "te-not-chunked-last",
        "two-hosts",
        "no-host",
        "space-before-colon",
    ],
)
async def test_smuggling_attempts_get_400_and_close(
    start_interceptor: StartInterceptor, backend: Backend, request_bytes: bytes
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    raw = await raw_exchange(interceptor.proxy_port, request_bytes)
    assert status_of(raw) == 400
    assert b"Connection: close" in raw
    assert raw.count(b"HTTP/1.1 ") == 1
    assert backend.requests == []


@pytest.mark.parametrize(
    "first",
    [
        b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ],
    ids=["refused-head", "refused-chunk", "close"],
)
async def test_answer_survives_the_client_sending_more_before_the_close(
    start_interceptor: StartInterceptor, backend: Backend, first: bytes
) -> None:
    # Closing with unread bytes makes the kernel reset the connection, which can destroy the
    # answer before the client reads it: the proxy half-closes and discards instead.
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    more = b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n" * 20000  # over one read, under the linger bound
    writer.write(first + more)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    async with asyncio.timeout(5):
        raw = await reader.read(-1)  # a reset here would raise, or lose the answer
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400" if b"close" not in first else b"HTTP/1.1 200")
    assert b"Connection: close" in head
    assert b"HTTP/1.1" not in rest
    assert len(backend.requests) == (1 if b"close" in first else 0)


async def test_header_limits_give_414_and_431(
    start_interceptor: StartInterceptor, backend: Backend
) -> None:
    interceptor, _, _ = await warm_proxy(
        start_interceptor, backend, max_request_line=100, max_header_bytes=200, max_headers=5
    )
    port = interceptor.proxy_port
    raw = await raw_exchange(port, b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(raw) == 414
    raw = await raw_exchange(
        port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 300 + b"\r\n\r\n"
    )
    assert status_of(raw) == 431
    many = b"".join(b"X-%d: v\r\n" % i for i in range(6))
    raw = await raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert status_of(raw) == 431
    # a head that never ends is cut off too, not buffered forever
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
    for _ in range(20):
        writer.write(b"z" * 1000)
    await writer.drain()
    async with asyncio.timeout(5):
        raw = await reader.read(-1)
    assert status_of(raw) == 431
    writer.close()


async def test_slow_client_header_timeout_and_idle_keepalive_timeout(
    start_interceptor: StartInterceptor, backend: Backend
) -> None:
    interceptor, _, _ = await warm_proxy(
        start_interceptor, backend, header_read_timeout=0.2, keepalive_timeout=0.2
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n")  # never finishes its head
    async with asyncio.timeout(5):
        raw = await reader.read(-1)
    assert status_of(raw) == 408
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
    async with asyncio.timeout(5):
        raw = await reader.read(-1)  # answered, then closed once idle
    assert status_of(raw) == 200
    writer.close()


async def test_no_route_is_404_naming_host_and_path(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({}))
    url = f"http://127.0.0.1:{interceptor.proxy_port}/some/path?x=1"
    async with session.get(url, headers={"Host": "nowhere.example"}) as resp:
        assert resp.status == 404
        assert await resp.text() == "no route for host 'nowhere.example' and path '/some/path'\n"


async def test_backend_refusing_gives_502_with_body(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # bound, never listening: connect is refused
        target = make_target()
        # A refused request waits at the gate for another endpoint until the readiness
        # deadline, then says what happened.
        interceptor = await start_interceptor(condition_wait=0.5)
        interceptor.set_router(HostRouter({"*": target}))
        interceptor.set_endpoints({backend_key(target): [("127.0.0.1", closed_port)]})
        async with session.get(f"http://127.0.0.1:{interceptor.proxy_port}/") as resp:
            assert resp.status == 502
            body = await resp.text()
            assert f"could not connect to test/app backend 127.0.0.1:{closed_port}" in body
            assert "connection refused" in body


async def test_backend_reset_mid_body_breaks_the_client_response(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    _, _, base = await warm_proxy(start_interceptor, backend)
    async with session.get(f"{base}/abort") as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_backend_closing_before_answering_gives_502(
    start_interceptor: StartInterceptor,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.transport.abort()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    interceptor.set_endpoints({backend_key(target): [("127.0.0.1", port)]})
    raw = await raw_exchange(
        interceptor.proxy_port, b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    assert status_of(raw) == 502
    assert b"closed the connection before responding" in raw
    server.close()


async def test_slow_backend_gives_504_after_response_header_timeout(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    target = make_target(timeouts={"responseHeader": "200ms"})
    _, _, base = await warm_proxy(start_interceptor, backend, target)
    async with session.get(f"{base}/wait/never") as resp:
        assert resp.status == 504
        assert "sent no response header within 0.2 s" in await resp.text()


async def client_via_proxy(
    start_interceptor: StartInterceptor, server: asyncio.Server
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client connection to a fresh interceptor that routes everything to ``server``."""
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    interceptor.set_endpoints({backend_key(target): [server.sockets[0].getsockname()[:2]]})
    return await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)


async def test_a_pooled_connection_the_backend_closed_is_not_used(
    start_interceptor: StartInterceptor,
) -> None:
    """A backend that closes each connection right after answering (without saying so): each
    request goes on a fresh connection, none is lost."""
    served = 0

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(once, "127.0.0.1", 0)
    reader, writer = await client_via_proxy(start_interceptor, server)
    for _ in range(3):
        writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            assert status_of(head) == 200
            assert await reader.readexactly(2) == b"ok"
    assert served == 3
    writer.close()
    server.close()


async def test_the_pool_does_not_hand_out_a_connection_the_backend_has_closed() -> None:
    """The backend's close reached the socket but the event loop has not seen it yet: the
    connection is dropped before a request is sent on it (which would then be lost)."""
    pool = Pool(asyncio.get_running_loop(), max_idle=4, idle_timeout=30)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        addr = listener.getsockname()
        conn = await pool.open(addr, 5)
        accepted, _ = listener.accept()  # already in the backlog: does not block
        pool.release(conn)
        assert pool.acquire(addr) is conn
        pool.release(conn)
        accepted.close()  # on loopback the FIN is in our socket before this returns
        assert pool.acquire(addr) is None
    pool.close()


async def test_request_the_backend_received_and_failed_on_is_not_sent_again(
    start_interceptor: StartInterceptor,
) -> None:
    """A backend that reads a GET on a pooled connection and then dies on it: the client gets
    502, and the request is not replayed on a fresh connection (it would crash that one too)."""
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            seen.append(head.split(b" ")[1])
            if head.startswith(b"GET /crash "):
                writer.close()  # as a process dying on it would
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    reader, writer = await client_via_proxy(start_interceptor, server)
    writer.write(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")  # leaves a pooled connection
    async with asyncio.timeout(5):
        assert status_of(await reader.readuntil(b"\r\n\r\n")) == 200
        assert await reader.readexactly(2) == b"ok"
    writer.write(b"GET /crash HTTP/1.1\r\nHost: a\r\n\r\n")
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert status_of(head) == 502
    assert seen == [b"/ok", b"/crash"]
    writer.close()
    server.close()


async def test_client_going_away_cancels_the_upstream_request(
    start_interceptor: StartInterceptor, backend: Backend
) -> None:
    interceptor, target, _ = await warm_proxy(start_interceptor, backend)
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    writer.write(b"GET /wait/forever HTTP/1.1\r\nHost: a\r\n\r\n")
    await until(lambda: "forever" in backend.gates)
    writer.close()
    await until(lambda: interceptor.counts()[target.key].in_flight == 0)
    del reader


async def test_our_own_answer_to_head_has_no_body_and_the_connection_stays_usable(
    start_interceptor: StartInterceptor,
) -> None:
    """A HEAD request gets our 404's head only (RFC 9110 section 9.3.2): a body would be read
    by the client as the start of the next response."""
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({}))
    raw = await raw_exchange(
        interceptor.proxy_port,
        b"HEAD /x HTTP/1.1\r\nHost: nowhere\r\n\r\n"
        b"GET /y HTTP/1.1\r\nHost: nowhere\r\nConnection: close\r\n\r\n",
    )
    first, _, rest = raw.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 404")
    length = int(
        next(
            v
            for k, _, v in (h.partition(b": ") for h in first.split(b"\r\n"))
            if k.lower() == b"content-length"
        )
    )
    assert length > 0  # the length GET would have, as HEAD must say
    assert rest.startswith(b"HTTP/1.1 404"), rest  # nothing of a body before the next answer
    assert rest.endswith(b"no route for host 'nowhere' and path '/y'\n")
