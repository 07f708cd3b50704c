"""What the interceptor's tests share (the component tier and the fuzz harness): a tiny router,
targets, test settings, a real aiohttp backend, polls, and a running proxy."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from wakeway.gateway.request import Request
from wakeway.interceptor import Interceptor, InterceptorSettings
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject


class HostRouter:
    """Routes by exact host, falling back to the target registered for "*"."""

    def __init__(self, targets: Mapping[str, HTTPScaledObject]) -> None:
        self.targets = dict(targets)

    def lookup(self, req: Request) -> HTTPScaledObject | None:
        return self.targets.get(req.host) or self.targets.get("*")


def make_target(
    name: str = "app", service: str = "app-svc", port: int = 8080, **spec: Any
) -> HTTPScaledObject:
    doc: dict[str, Any] = {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name, "namespace": "test"},
        "spec": {"scaleTargetRef": {"name": name, "service": service, "port": port}, **spec},
    }
    return parse_httpscaledobject(doc)


def backend_key(target: HTTPScaledObject) -> str:
    return target.backend.key(target.namespace)


TEST_SETTINGS = InterceptorSettings(
    listen_host="127.0.0.1",
    listen_port=0,
    admin_host="127.0.0.1",
    admin_port=0,
    connect_timeout=2.0,
    response_header_timeout=10.0,
    condition_wait=10.0,
    drain_timeout=5.0,
    counts_heartbeat=0.2,
)


class StartInterceptor(Protocol):
    """The ``start_interceptor`` fixture: an interceptor with TEST_SETTINGS, any of them
    overridden by keyword (``condition_wait=1.0``), started; stopped at teardown."""

    async def __call__(self, **overrides: Any) -> Interceptor: ...


class Backend:
    """A real aiohttp server on 127.0.0.1 with handlers the proxy tests need."""

    def __init__(self) -> None:
        self.app = web.Application(client_max_size=1 << 30)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.requests: list[web.Request] = []
        self.gates: dict[str, asyncio.Event] = {}
        r = self.app.router
        r.add_route("*", "/echo", self.echo)
        r.add_post("/upload", self.upload)
        r.add_get("/download", self.download)
        r.add_get("/sse", self.sse)
        r.add_get("/ws", self.ws)
        r.add_get("/wait/{name}", self.wait)
        r.add_get("/status/{code}", self.status)
        r.add_get("/abort", self.abort)

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self.runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self.runner, sock).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def echo(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": [[k, v] for k, v in request.headers.items()],
                "body": body.decode("latin-1"),
            }
        )

    async def upload(self, request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"sha256": digest.hexdigest(), "size": size})

    async def download(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query["size"])
        chunked = request.query.get("chunked") == "1"
        response = web.StreamResponse()
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = size
        await response.prepare(request)
        for piece in pattern_chunks(size):
            await response.write(piece)
        await response.write_eof()
        return response

    async def sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(3):
            await response.write(f"data: event {i}\n\n".encode())
            await self.gate(f"sse-{i}").wait()
        await response.write_eof()
        return response

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str("echo:" + msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws

    async def wait(self, request: web.Request) -> web.Response:
        await self.gate(request.match_info["name"]).wait()
        return web.Response(text="released\n")

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status\n")

    async def abort(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b"x" * 10)
        assert request.transport is not None
        request.transport.abort()
        return response


def pattern_chunks(size: int, piece: int = 1 << 16) -> Iterator[bytes]:
    """Deterministic bytes (so the far side can checksum without storing them)."""
    block = bytes(range(256)) * (piece // 256)
    sent = 0
    while sent < size:
        n = min(piece, size - sent)
        yield block[:n]
        sent += n


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for piece in pattern_chunks(size):
        digest.update(piece)
    return digest.hexdigest()


async def until(predicate: Callable[[], object], within: float = 5.0) -> None:
    """Wait (bounded) for a state the proxy reaches asynchronously; a poll, not a sleep."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.005)


async def raw_exchange(port: int, data: bytes, *, read_until_close: bool = True) -> bytes:
    """Send raw bytes to 127.0.0.1:port and read until the server closes (5 s at most)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read(-1) if read_until_close else await reader.read(65536)
    finally:
        writer.close()


async def warm_proxy(
    start: StartInterceptor, backend: Backend, target: HTTPScaledObject | None = None, **kw: Any
) -> tuple[Interceptor, HTTPScaledObject, str]:
    """An interceptor routing every host to ``target`` whose backend is ready."""
    target = target or make_target()
    interceptor: Interceptor = await start(**kw)
    interceptor.set_router(HostRouter({"*": target}))
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    return interceptor, target, f"http://127.0.0.1:{interceptor.proxy_port}"
