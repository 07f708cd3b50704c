"""HTTP/2 clients (h2c) through a real interceptor to HTTP/1.1 backends: prior knowledge and
Upgrade, many streams on one connection, flow control both ways, trailers, RST_STREAM, the
stream limit, GOAWAY on drain, and a cold start; and HTTP/1.1 and HTTP/2 clients to an h2c
backend (its Service port's appProtocol says so)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import pytest

from tests.h2_backend import H2Backend
from tests.h2_client import H2Client
from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
    pattern_sha256,
    until,
    warm_proxy,
)
from wakeway.interceptor import Interceptor

pytestmark = pytest.mark.component


@pytest.fixture
async def clients() -> AsyncIterator[list[H2Client]]:
    made: list[H2Client] = []
    yield made
    for client in made:
        await client.close()


def in_flight(interceptor: Interceptor, key: str) -> int:
    counts = interceptor.counts().get(key)
    return 0 if counts is None else counts.in_flight


async def h2_client(port: int, clients: list[H2Client], **kw: bool) -> H2Client:
    client = H2Client(port, **kw)
    clients.append(client)
    await client.connect()
    return client


async def test_prior_knowledge_streams_reach_an_http11_backend(
    start_interceptor: StartInterceptor, backend: Backend, clients: list[H2Client]
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    client = await h2_client(interceptor.proxy_port, clients)
    streams = [
        client.request("GET", f"/echo?n={i}", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])[1]
        for i in range(20)
    ]
    for n, response in enumerate(streams):
        await asyncio.wait_for(response.done.wait(), 10)
        assert response.status == 200
        assert response.headers[b"x-wakeway-cold-start"] == b"false"
        data = json.loads(bytes(response.body))
        assert data["path"] == f"/echo?n={n}"
        got = {k.lower(): v for k, v in data["headers"]}
        assert got["host"] == "app.example.com"
        assert got["x-forwarded-for"] == "127.0.0.1"
        assert got["cookie"] == "a=1; b=2"
    # HTTP/1.1 on the same listener still works.
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert (await reader.read(-1)).startswith(b"HTTP/1.1 200 ")
    writer.close()


async def test_upgrade_h2c_without_a_body_becomes_stream_one(
    start_interceptor: StartInterceptor, backend: Backend, clients: list[H2Client]
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    client = H2Client(interceptor.proxy_port)
    clients.append(client)
    first = await client.connect(upgrade_path="/echo?upgraded=1")
    assert first is not None
    await asyncio.wait_for(first.done.wait(), 10)
    assert first.status == 200
    data = json.loads(bytes(first.body))
    assert data["path"] == "/echo?upgraded=1"
    sent = {k.lower() for k, _ in data["headers"]}
    assert "upgrade" not in sent
    assert "http2-settings" not in sent
    _, second = client.request("GET", "/echo?then=2")
    await asyncio.wait_for(second.done.wait(), 10)
    assert json.loads(bytes(second.body))["path"] == "/echo?then=2"


async def test_request_body_larger_than_the_windows_arrives_whole(
    start_interceptor: StartInterceptor, backend: Backend, clients: list[H2Client]
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    client = await h2_client(interceptor.proxy_port, clients)
    body = bytes(range(256)) * 4096 * 3  # 3 MiB: the proxy must open the windows as it goes
    _, response = client.request("POST", "/upload", body=body)
    await asyncio.wait_for(response.done.wait(), 20)
    assert response.status == 200
    got = json.loads(bytes(response.body))
    assert got == {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}


async def test_response_waits_for_the_clients_window(
    start_interceptor: StartInterceptor, backend: Backend, clients: list[H2Client]
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend)
    client = await h2_client(interceptor.proxy_port, clients, auto_ack=False)
    size = 2 * 1024 * 1024
    sid, response = client.request("GET", f"/download?size={size}&chunked=1")
    # The client's windows (65535 bytes each) admit that much and no more; h2 would raise a
    # flow-control error on the client side if the proxy sent past them.
    await client.wait_for(lambda: len(response.body) == 65535)
    assert not response.done.is_set()
    while not response.done.is_set():
        client.ack(sid)
        await client.wait_for(lambda: response.unacked or response.done.is_set())
    assert response.status == 200
    assert hashlib.sha256(response.body).hexdigest() == pattern_sha256(size)


async def test_client_reset_cancels_the_exchange(
    start_interceptor: StartInterceptor, backend: Backend, clients: list[H2Client]
) -> None:
    interceptor, target, _ = await warm_proxy(start_interceptor, backend)
    client = await h2_client(interceptor.proxy_port, clients)
    sid, _ = client.request("GET", "/wait/reset")
    await until(lambda: in_flight(interceptor, target.key) == 1)
    client.reset(sid)
    await until(lambda: in_flight(interceptor, target.key) == 0)
    # The connection is still good for other streams.
    _, response = client.request("GET", "/echo")
    await asyncio.wait_for(response.done.wait(), 10)
    assert response.status == 200


async def test_stream_limit_comes_from_the_setting(
    start_interceptor: StartInterceptor, backend: Backend, clients: list[H2Client]
) -> None:
    interceptor, _, _ = await warm_proxy(start_interceptor, backend, h2_max_concurrent_streams=3)
    client = await h2_client(interceptor.proxy_port, clients)
    _, response = client.request("GET", "/echo")
    await asyncio.wait_for(response.done.wait(), 10)
    assert client.h2.remote_settings.max_concurrent_streams == 3


async def test_drain_sends_goaway_and_finishes_admitted_streams(
    start_interceptor: StartInterceptor, backend: Backend, clients: list[H2Client]
) -> None:
    interceptor, target, _ = await warm_proxy(start_interceptor, backend)
    client = await h2_client(interceptor.proxy_port, clients)
    sid, response = client.request("GET", "/wait/drain")
    await until(lambda: in_flight(interceptor, target.key) == 1)
    stopping = asyncio.create_task(interceptor.drain_and_stop(drain_timeout=5))
    await client.wait_for(lambda: client.goaway is not None)
    assert client.goaway == (sid, 0)
    backend.gate("drain").set()
    await asyncio.wait_for(response.done.wait(), 10)
    assert response.status == 200
    await asyncio.wait_for(client.closed.wait(), 10)
    await stopping


async def test_trailers_both_ways_through_a_chunked_backend(
    start_interceptor: StartInterceptor, clients: list[H2Client]
) -> None:
    seen = bytearray()
    got_all = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while b"\r\n0\r\n" not in seen or not seen.endswith(b"\r\n\r\n"):
            seen.extend(await reader.read(65536))
        got_all.set()
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\nx-checksum: 42\r\n\r\n"
        )
        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    interceptor.set_endpoints({backend_key(target): [("127.0.0.1", port)]})
    client = await h2_client(interceptor.proxy_port, clients)
    _, response = client.request(
        "POST", "/t", body=b"abc", trailers=[(b"x-request-sum", b"7")], end=True
    )
    await asyncio.wait_for(response.done.wait(), 10)
    assert response.status == 200
    assert bytes(response.body) == b"hello"
    assert response.trailers == {b"x-checksum": b"42"}
    assert b"Transfer-Encoding: chunked" in seen
    assert seen.endswith(b"3\r\nabc\r\n0\r\nx-request-sum: 7\r\n\r\n")
    server.close()


async def test_cold_stream_is_held_then_forwarded(
    start_interceptor: StartInterceptor, backend: Backend, clients: list[H2Client]
) -> None:
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    client = await h2_client(interceptor.proxy_port, clients)
    _, response = client.request("POST", "/echo", body=b"held body")
    await until(
        lambda: (
            interceptor.counts().get(target.key) is not None
            and interceptor.counts()[target.key].held == 1
        )
    )
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    await asyncio.wait_for(response.done.wait(), 10)
    assert response.status == 200
    assert response.headers[b"x-wakeway-cold-start"] == b"true"
    assert json.loads(bytes(response.body))["body"] == "held body"


async def test_errors_of_our_own_reach_an_h2_client_as_pages(
    start_interceptor: StartInterceptor, clients: list[H2Client]
) -> None:
    interceptor = await start_interceptor(condition_wait=0.3)
    interceptor.set_router(HostRouter({"*": make_target()}))
    client = await h2_client(interceptor.proxy_port, clients)
    _, response = client.request("GET", "/")
    await asyncio.wait_for(response.done.wait(), 10)
    assert response.status == 504
    assert b"did not become ready" in response.body
    assert response.headers[b"content-length"] == str(len(response.body)).encode()


@pytest.fixture
async def h2_backend() -> AsyncIterator[H2Backend]:
    server = H2Backend(goaway_after=1)
    await server.start()
    yield server
    await server.stop()


async def h2c_proxy(start: StartInterceptor, backend: H2Backend) -> Interceptor:
    target = make_target(service="h2-svc", port=80)
    interceptor = await start()
    interceptor.set_router(HostRouter({"*": target}))
    key = backend_key(target)
    interceptor.set_endpoints({key: [("127.0.0.1", backend.port)]}, h2c={key})
    return interceptor


async def test_http11_clients_reach_an_h2c_backend(
    start_interceptor: StartInterceptor, h2_backend: H2Backend
) -> None:
    interceptor = await h2c_proxy(start_interceptor, h2_backend)
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    for n in range(2):  # the backend sends GOAWAY after each answer: a new connection each
        writer.write(
            b"POST /h1?n=%d HTTP/1.1\r\nHost: app.example.com\r\nTransfer-Encoding: chunked\r\n"
            b"X-Kept: yes\r\n\r\n5\r\nhello\r\n0\r\n\r\n" % n
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"Transfer-Encoding: chunked" in head
        body = b""
        while not body.endswith(b"0\r\n\r\n"):
            body += await reader.read(65536)
        data = json.loads(body.split(b"\r\n")[1])
        fields = dict(data["headers"])
        assert fields[":path"] == f"/h1?n={n}"
        assert fields[":authority"] == "app.example.com"
        assert fields[":method"] == "POST"
        assert fields["x-kept"] == "yes"
        assert "transfer-encoding" not in fields
        assert data["body"] == "hello"
    writer.close()
    assert h2_backend.connections == 2


async def test_h2_clients_reach_an_h2c_backend_with_trailers_and_large_bodies(
    start_interceptor: StartInterceptor, h2_backend: H2Backend, clients: list[H2Client]
) -> None:
    interceptor = await h2c_proxy(start_interceptor, h2_backend)
    client = await h2_client(interceptor.proxy_port, clients)
    body = bytes(range(256)) * 4096  # 1 MiB: more than the backend's windows
    _, response = client.request(
        "POST", "/big", body=body, trailers=[(b"x-request-sum", b"7")], end=True
    )
    await asyncio.wait_for(response.done.wait(), 20)
    assert response.status == 200
    data = json.loads(bytes(response.body))
    assert data["size"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert data["trailers"] == [["x-request-sum", "7"]]
    assert response.trailers == {b"x-echo-trailer": b"yes"}


async def test_fields_sent_over_http2_are_trimmed_and_credentials_never_indexed(
    start_interceptor: StartInterceptor, h2_backend: H2Backend
) -> None:
    """h2 checks and normalises only what it receives: what the proxy sends to an h2c backend
    has no surrounding whitespace (HTTP/1.1 keeps trailing whitespace; the backend's h2 would
    refuse it) and carries credentials and short cookies outside HPACK's dynamic table."""
    interceptor = await h2c_proxy(start_interceptor, h2_backend)
    reader, writer = await asyncio.open_connection("127.0.0.1", interceptor.proxy_port)
    writer.write(
        b"GET /trim HTTP/1.1\r\nHost: app.example.com\r\nX-Spaced: two words \t \r\n"
        b"Authorization: Bearer secret\r\nCookie: a=1\r\nX-Long-Cookie: no\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    body = b""
    while not body.endswith(b"0\r\n\r\n"):
        body += await reader.read(65536)
    writer.close()
    data = json.loads(body.split(b"\r\n")[1])
    fields = dict(data["headers"])
    assert fields["x-spaced"] == "two words"
    assert fields["authorization"] == "Bearer secret"
    assert sorted(data["never_indexed"]) == ["authorization", "cookie"]


async def test_fields_of_an_http11_response_reach_an_h2_client_trimmed(
    start_interceptor: StartInterceptor, clients: list[H2Client]
) -> None:
    """A backend's HTTP/1.1 field with trailing whitespace is valid there, not in HTTP/2 (the
    client's h2 refuses it): the proxy trims it."""
    served: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nX-Spaced:  padded \t \r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        target = make_target(service="trim-svc", port=80)
        interceptor = await start_interceptor()
        interceptor.set_router(HostRouter({"*": target}))
        port = server.sockets[0].getsockname()[1]
        interceptor.set_endpoints({backend_key(target): [("127.0.0.1", port)]})
        client = await h2_client(interceptor.proxy_port, clients)
        _, response = client.request("GET", "/trim")
        await asyncio.wait_for(response.done.wait(), 10)
        assert response.status == 200
        assert response.headers[b"x-spaced"] == b"padded"
        assert bytes(response.body) == b"ok"
        assert served
    finally:
        server.close()


async def test_an_h2c_backends_stream_limit_opens_another_connection(
    start_interceptor: StartInterceptor, clients: list[H2Client]
) -> None:
    """A backend that takes 2 streams at a time and answers only when it has 2: once its first
    connection is open, 4 requests at once need a second one, and no connection ever carries
    more than 2 streams."""
    backend = H2Backend(max_streams=2, answer_after=2)
    await backend.start()
    try:
        interceptor = await h2c_proxy(start_interceptor, backend)
        client = await h2_client(interceptor.proxy_port, clients)
        for count in (2, 4):
            responses = [client.request("GET", f"/limit?n={i}")[1] for i in range(count)]
            for response in responses:
                await asyncio.wait_for(response.done.wait(), 10)
                assert response.status == 200
        assert backend.connections == 2
        assert backend.most_open == 2
    finally:
        await backend.stop()


async def test_a_burst_beyond_the_stream_limit_of_a_backend_not_yet_connected_is_served(
    start_interceptor: StartInterceptor, clients: list[H2Client]
) -> None:
    """4 requests at once for an h2c backend with no connection yet that takes 2 streams at a
    time: those the first connection cannot take wait for another one, none gets a 502."""
    backend = H2Backend(max_streams=2, answer_after=2)
    await backend.start()
    try:
        interceptor = await h2c_proxy(start_interceptor, backend)
        client = await h2_client(interceptor.proxy_port, clients)
        responses = [client.request("GET", f"/burst?n={i}")[1] for i in range(4)]
        for response in responses:
            await asyncio.wait_for(response.done.wait(), 10)
        assert [r.status for r in responses] == [200] * 4
        assert backend.most_open == 2
        assert backend.connections == 2
    finally:
        await backend.stop()
