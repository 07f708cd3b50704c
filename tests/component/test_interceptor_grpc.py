"""gRPC through a real interceptor: grpcio clients and a grpcio server (raw-bytes methods, no
generated code) behind a Service port whose appProtocol says h2c. Unary and client, server and
bidirectional streaming, to a warm and to a cold backend; the interceptor's own errors as gRPC
statuses; grpc-timeout honoured; a streaming call counted in flight for its whole life."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.h2_client import H2Client
from tests.interceptor_helpers import HostRouter, StartInterceptor, backend_key, make_target, until
from wakeway.interceptor import Interceptor

pytestmark = pytest.mark.component

SERVICE = "wakeway.test.Echo"


def raw(message: bytes) -> bytes:
    """Messages are bytes as they are (no generated code)."""
    return message


class EchoServer:
    """A grpc.aio server: Unary, Collect (client streaming), Count (server streaming, waits
    on ``gate`` before its last message), Chat (bidi)."""

    def __init__(self) -> None:
        self.server = grpc.aio.server()
        self.port = 0
        self.gate = asyncio.Event()
        self.metadata: list[tuple[str, str | bytes]] = []
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "Collect": grpc.stream_unary_rpc_method_handler(self.collect),
            "Count": grpc.unary_stream_rpc_method_handler(self.count),
            "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )

    async def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        self.metadata = list(context.invocation_metadata() or ())
        return b"echo:" + request

    async def collect(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        return b"+".join([r async for r in requests])

    async def count(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        for i in range(int(request)):
            if i == int(request) - 1:
                await self.gate.wait()
            yield b"%d" % i

    async def chat(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        async for r in requests:
            yield r[::-1]


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = EchoServer()
    await server.start()
    yield server
    server.gate.set()
    await server.server.stop(0)


async def grpc_proxy(
    start: StartInterceptor, echo: EchoServer | None, **settings: float
) -> tuple[Interceptor, str, grpc.aio.Channel]:
    """An interceptor routing every host to a target whose backend speaks h2c; ready when
    ``echo`` is given, cold otherwise."""
    target = make_target(service="grpc-svc", port=50051)
    interceptor = await start(**settings)
    interceptor.set_router(HostRouter({"*": target}))
    if echo is not None:
        interceptor.set_endpoints(
            {backend_key(target): [("127.0.0.1", echo.port)]}, h2c={backend_key(target)}
        )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{interceptor.proxy_port}")
    return interceptor, target.key, channel


def in_flight(interceptor: Interceptor, key: str) -> int:
    counts = interceptor.counts().get(key)
    return 0 if counts is None else counts.in_flight


def held(interceptor: Interceptor, key: str) -> int:
    counts = interceptor.counts().get(key)
    return 0 if counts is None else counts.held


async def test_unary_and_every_kind_of_streaming_through_the_interceptor(
    start_interceptor: StartInterceptor, echo: EchoServer
) -> None:
    _, _, channel = await grpc_proxy(start_interceptor, echo)
    async with channel:
        unary = channel.unary_unary(f"/{SERVICE}/Unary", raw, raw)
        assert await unary(b"hi", metadata=(("x-tenant", "a"),), timeout=10) == b"echo:hi"
        assert ("x-tenant", "a") in echo.metadata
        collect = channel.stream_unary(f"/{SERVICE}/Collect", raw, raw)
        assert await collect(iter([b"a", b"b", b"c"]), timeout=10) == b"a+b+c"
        echo.gate.set()
        count = channel.unary_stream(f"/{SERVICE}/Count", raw, raw)
        assert [m async for m in count(b"5", timeout=10)] == [b"0", b"1", b"2", b"3", b"4"]
        chat = channel.stream_stream(f"/{SERVICE}/Chat", raw, raw)
        call = chat(timeout=10)  # type: ignore[call-arg]  # (the stubs want an iterator)
        for word in (b"abc", b"xyz"):
            await call.write(word)
            assert await call.read() == word[::-1]
        await call.done_writing()
        assert await call.code() == grpc.StatusCode.OK
        big = bytes(range(256)) * 8192  # 2 MiB: more than every window on the way
        assert await unary(big, timeout=20) == b"echo:" + big


async def test_a_streaming_call_is_in_flight_for_its_whole_life(
    start_interceptor: StartInterceptor, echo: EchoServer
) -> None:
    interceptor, key, channel = await grpc_proxy(start_interceptor, echo)
    async with channel:
        call = channel.unary_stream(f"/{SERVICE}/Count", raw, raw)(b"3", timeout=10)
        assert await call.read() == b"0"
        assert await call.read() == b"1"
        assert in_flight(interceptor, key) == 1  # between messages, still in flight
        echo.gate.set()
        assert await call.read() == b"2"
        assert await call.code() == grpc.StatusCode.OK
        await until(lambda: in_flight(interceptor, key) == 0)


async def test_a_call_to_a_cold_backend_is_held_until_it_wakes(
    start_interceptor: StartInterceptor, echo: EchoServer
) -> None:
    interceptor, key, channel = await grpc_proxy(start_interceptor, None)
    target = make_target(service="grpc-svc", port=50051)
    async with channel:
        chat = channel.stream_stream(f"/{SERVICE}/Chat", raw, raw)(timeout=10)  # type: ignore[call-arg]
        await chat.write(b"cold")
        await until(lambda: held(interceptor, key) == 1)
        interceptor.set_endpoints(
            {backend_key(target): [("127.0.0.1", echo.port)]}, h2c={backend_key(target)}
        )
        assert await chat.read() == b"dloc"
        await chat.write(b"warm")
        assert await chat.read() == b"mraw"
        await chat.done_writing()
        assert await chat.code() == grpc.StatusCode.OK


async def test_errors_of_the_interceptor_are_grpc_statuses(
    start_interceptor: StartInterceptor,
) -> None:
    _, _, channel = await grpc_proxy(start_interceptor, None, condition_wait=0.3)
    async with channel:
        unary = channel.unary_unary(f"/{SERVICE}/Unary", raw, raw)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unary(b"x", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "did not become ready within 0.3 s" in (caught.value.details() or "")


async def test_grpc_timeout_ends_a_held_call_with_deadline_exceeded(
    start_interceptor: StartInterceptor,
) -> None:
    interceptor, key, _ = await grpc_proxy(start_interceptor, None)
    # A raw HTTP/2 client: a grpcio client would give up at its own deadline and never show
    # what the interceptor answers.
    client = H2Client(interceptor.proxy_port)
    await client.connect()
    try:
        _, response = client.request(
            "POST",
            f"/{SERVICE}/Unary",
            headers=[
                (b"content-type", b"application/grpc"),
                (b"te", b"trailers"),
                (b"grpc-timeout", b"300m"),
            ],
            body=b"\x00\x00\x00\x00\x01x",
        )
        await asyncio.wait_for(response.done.wait(), 10)
    finally:
        await client.close()
    assert response.status == 200
    assert response.headers[b"grpc-status"] == b"4"  # DEADLINE_EXCEEDED, trailers-only
    assert b"did not complete within 0.3 s" in response.headers[b"grpc-message"]
    assert not response.body
    assert in_flight(interceptor, key) == 0
    assert held(interceptor, key) == 0
