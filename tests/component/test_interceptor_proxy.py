"""The forwarding path against a real aiohttp backend: headers, streaming, WebSocket, ordering."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.interceptor_helpers import (
    Backend,
    StartInterceptor,
    pattern_chunks,
    pattern_sha256,
    raw_exchange,
    warm_proxy,
)

pytestmark = pytest.mark.component

BIG = 50 * 1024 * 1024


async def test_forwards_with_forwarding_headers_and_without_hop_by_hop(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    _, _, base = await warm_proxy(start_interceptor, backend, via=True)
    headers = {
        "Host": "app.example.com",
        "X-Forwarded-For": "203.0.113.9",
        "Connection": "keep-alive, X-Secret",
        "X-Secret": "hop",
        "Keep-Alive": "timeout=5",
        "Proxy-Authorization": "Basic Zm9v",
        "X-Kept": "yes",
    }
    async with session.get(f"{base}/echo?q=1", headers=headers) as resp:
        assert resp.status == 200
        assert resp.headers["X-Wakeway-Cold-Start"] == "false"
        assert resp.headers["Via"] == "1.1 wakeway"
        data = await resp.json()
    got = {k.lower(): v for k, v in data["headers"]}
    assert data["path"] == "/echo?q=1"
    assert got["host"] == "app.example.com"
    assert got["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert got["x-forwarded-proto"] == "http"
    assert got["x-forwarded-host"] == "app.example.com"
    assert got["x-kept"] == "yes"
    assert got["via"] == "1.1 wakeway"
    for hop in ("x-secret", "keep-alive", "proxy-authorization"):
        assert hop not in got


async def test_keep_alive_reuses_upstream_connection(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    _, _, base = await warm_proxy(start_interceptor, backend)
    for i in range(20):
        async with session.post(f"{base}/echo", data=f"body-{i}") as resp:
            assert (await resp.json())["body"] == f"body-{i}"
    transports = {id(r.transport) for r in backend.requests}
    assert len(transports) == 1


async def test_large_upload_and_download_keep_every_byte(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    _, _, base = await warm_proxy(start_interceptor, backend)

    async def body() -> AsyncIterator[bytes]:
        for piece in pattern_chunks(BIG):
            yield piece

    # Content-Length upload
    data = b"".join(pattern_chunks(BIG))
    async with session.post(f"{base}/upload", data=data) as resp:
        assert await resp.json() == {"sha256": pattern_sha256(BIG), "size": BIG}
    # chunked upload
    async with session.post(f"{base}/upload", data=body()) as resp:
        assert await resp.json() == {"sha256": pattern_sha256(BIG), "size": BIG}
    for chunked in ("0", "1"):
        digest = hashlib.sha256()
        async with session.get(f"{base}/download?size={BIG}&chunked={chunked}") as resp:
            assert resp.status == 200
            if chunked == "1":
                assert resp.headers["Transfer-Encoding"] == "chunked"
            else:
                assert resp.headers["Content-Length"] == str(BIG)
            async for piece in resp.content.iter_any():
                digest.update(piece)
        assert digest.hexdigest() == pattern_sha256(BIG)


async def test_server_sent_events_arrive_one_by_one(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    _, _, base = await warm_proxy(start_interceptor, backend)
    async with session.get(f"{base}/sse") as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        for i in range(3):
            line = await asyncio.wait_for(resp.content.readline(), 5)
            assert line == f"data: event {i}\n".encode()
            assert await resp.content.readline() == b"\n"
            # the backend sends the next event only after this one reached the client
            backend.gate(f"sse-{i}").set()
        assert await resp.content.read() == b""


async def test_websocket_both_ways(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    _, _, base = await warm_proxy(start_interceptor, backend)
    async with session.ws_connect(f"{base}/ws") as ws:
        for i in range(5):
            await ws.send_str(f"hello {i}")
            assert await ws.receive_str(timeout=5) == f"echo:hello {i}"
        await ws.send_bytes(b"abc" * 30000)
        assert await ws.receive_bytes(timeout=5) == (b"abc" * 30000)[::-1]


async def test_pipelined_requests_are_answered_in_order(
    start_interceptor: StartInterceptor, backend: Backend
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    requests = (
        b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(10))
        + b"GET /echo?n=last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    raw = await raw_exchange(interceptor.proxy_port, requests)
    order = [m.decode() for m in re.findall(rb'"path": "/echo\?n=(\w+)"', raw)]
    assert order == [*map(str, range(10)), "last"]
    assert raw.count(b"HTTP/1.1 200 OK") == 11
    assert b"n=last" in raw


async def test_empty_chunked_body_that_ends_before_the_upstream_connects_is_terminated(
    start_interceptor: StartInterceptor, backend: Backend
) -> None:
    # The body's last chunk arrives with the head, before a new upstream connection is open:
    # it must still follow the head upstream, or the backend waits for it forever.
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    raw = await raw_exchange(
        interceptor.proxy_port,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n0\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 200 OK"), raw
    assert b'"body": ""' in raw


H2C_OFFER = (
    b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
)


@pytest.mark.parametrize("split", [False, True], ids=["one write", "body after the head"])
@pytest.mark.parametrize(
    ("framing", "body"),
    [
        pytest.param(b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n", id="chunked"),
        pytest.param(b"Content-Length: 5\r\n", b"hello", id="length"),
    ],
)
async def test_an_upgrade_offer_with_a_body_forwards_the_body_not_the_offer(
    start_interceptor: StartInterceptor, backend: Backend, framing: bytes, body: bytes, split: bool
) -> None:
    # `printf hello | curl --http2 -T - URL`: an h2c upgrade offered on a request with a body.
    # The parser would take the body for bytes of the new protocol; the backend must get the
    # body as the request's body, and a request pipelined after it must still be answered.
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    head = b"POST /echo HTTP/1.1\r\nHost: a\r\n" + H2C_OFFER + framing + b"\r\n"
    after = b"GET /echo?n=after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    try:
        writer.write(head if split else head + body + after)
        if split:
            await writer.drain()  # the head leaves in a segment of its own
            writer.write(body + after)
        async with asyncio.timeout(5):
            raw = await reader.read(-1)
    finally:
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200 OK"), raw
    assert raw.count(b"HTTP/1.1 200 OK") == 2, raw
    assert b'"body": "hello"' in raw, raw
    assert b"n=after" in raw
    assert b"h2c" not in raw.lower()  # the offer was not passed on to the backend


async def test_head_response_has_no_body_and_connection_stays_usable(
    start_interceptor: StartInterceptor, backend: Backend
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    raw = await raw_exchange(
        interceptor.proxy_port,
        b"HEAD /download?size=100 HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /download?size=5 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    first, _, second = raw.partition(b"\r\n\r\n")
    assert b"Content-Length: 100" in first
    assert second.startswith(b"HTTP/1.1 200")
    assert second.endswith(b"\r\n\r\n" + bytes(range(5)))


async def test_http10_client_gets_close_delimited_body(
    start_interceptor: StartInterceptor, backend: Backend
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    raw = await raw_exchange(
        interceptor.proxy_port, b"GET /download?size=300&chunked=1 HTTP/1.0\r\nHost: a\r\n\r\n"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head
    assert body == bytes(range(256)) + bytes(range(44))
