"""Connections to backends: one httptools response parser per connection, pooled LIFO.

A connection goes back to the pool only after its response was read to the end and the request
was written to the end; anything else (an error, a close-delimited body, an early response)
closes it, because a half-consumed connection would hand the next request someone else's bytes.
A pooled connection is checked before reuse, so a request is never sent on one the backend has
already closed, and a request once sent is never sent again.
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any, Protocol, cast

import httptools

from wakeway.model.settings import Address, format_address

from .timers import Deadline

__all__ = ["Address", "Pool", "ResponseSink", "UpstreamConnection", "format_address"]


class ResponseSink(Protocol):
    """Who receives what a backend connection reads (an exchange)."""

    def on_response_head(
        self,
        up: UpstreamConnection,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
    ) -> bool:
        """Relay a response head; true when the response ends at its head (HEAD)."""
        ...

    def on_response_body(self, data: bytes) -> None: ...
    def on_response_end(self, up: UpstreamConnection) -> None: ...
    def on_upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None: ...
    def on_upstream_failed(self, message: str) -> None: ...
    def on_response_header_timeout(self, up: UpstreamConnection) -> None: ...
    def relay(self, data: bytes) -> None:
        """Tunnel bytes (after 101) to the client."""
        ...

    def begin_batch(self) -> bool: ...
    def end_batch(self) -> None: ...
    def upstream_paused(self, on: bool) -> None:
        """This connection's write buffer is full (true) or drained (false)."""
        ...


class UpstreamConnection(asyncio.Protocol):
    """One TCP connection to a backend; its sink (an exchange) receives the parsed response."""

    __slots__ = (
        "_head_done",
        "_headers",
        "_parser",
        "_reason",
        "_skip",
        "addr",
        "deadline",
        "idle_since",
        "pool",
        "sink",
        "trailers",
        "transport",
        "tunnel",
    )

    def __init__(self, pool: Pool, addr: Address) -> None:
        self.pool = pool
        self.addr = addr
        self.transport: asyncio.Transport | None = None
        self.sink: ResponseSink | None = None
        self._parser: Any = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._skip = False
        self._head_done = False
        self.trailers: list[tuple[bytes, bytes]] | None = None  # of the current response
        self.tunnel = False
        self.idle_since = 0.0
        self.deadline = Deadline(pool.loop, self._on_deadline)

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        ex = self.sink
        if self.tunnel:
            if ex is not None:
                ex.relay(data)
            return
        if ex is None:
            # Bytes on an idle connection: the backend is confused; never reuse it.
            self.close()
            return
        batching = ex.begin_batch()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._tunnel_rest(data, exc.args[0])
        except httptools.HttpParserError as exc:
            failed = self.sink
            self.sink = None
            self.close()
            if failed is not None:
                failed.on_upstream_failed(
                    f"invalid response from {format_address(self.addr)}: {exc}"
                )
            return
        finally:
            if batching:
                ex.end_batch()
        if self._skip:
            # A response to HEAD ended at its head; the parser would wait for a body.
            self._skip = False
            self._parser = httptools.HttpResponseParser(self)

    def _tunnel_rest(self, data: bytes, offset: int) -> None:
        # Bytes after a 101 response head already belong to the upgraded protocol.
        ex = self.sink
        if self.tunnel and ex is not None and offset < len(data):
            ex.relay(data[offset:])

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline.cancel()
        ex = self.sink
        self.sink = None
        if ex is None:
            self.pool.forget(self)
            return
        ex.on_upstream_lost(self, exc)

    def pause_writing(self) -> None:
        ex = self.sink
        if ex is not None:
            ex.upstream_paused(True)

    def resume_writing(self) -> None:
        ex = self.sink
        if ex is not None:
            ex.upstream_paused(False)

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers = []
        self._reason = b""
        self._head_done = False
        self.trailers = None

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_done:  # a trailer field, after a chunked body
            if self.trailers is None:
                self.trailers = []
            self.trailers.append((name, value))
        else:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_done = True
        self.deadline.disarm()
        ex = self.sink
        if ex is None:
            return
        status = self._parser.get_status_code()
        if ex.on_response_head(self, status, self._reason, self._headers):
            self._skip = True

    def on_body(self, body: bytes) -> None:
        ex = self.sink
        if ex is not None and not self._skip:
            ex.on_response_body(body)

    def on_message_complete(self) -> None:
        ex = self.sink
        if ex is not None and not self._skip:
            ex.on_response_end(self)

    # -- used by the exchange ---------------------------------------------------------------
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None:
            transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        transport = self.transport
        if transport is not None:
            transport.writelines(parts)

    def close(self) -> None:
        self.deadline.cancel()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.sink = None
        self.deadline.cancel()
        if self.transport is not None:
            self.transport.abort()

    def _on_deadline(self) -> None:
        ex = self.sink
        if ex is not None:
            ex.on_response_header_timeout(self)


class Pool:
    """Idle keep-alive connections per backend address, most recently used first."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_idle: int, idle_timeout: float) -> None:
        self.loop = loop
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self._idle: dict[Address, list[UpstreamConnection]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    def acquire(self, addr: Address) -> UpstreamConnection | None:
        stack = self._idle.get(addr)
        while stack:
            conn = stack.pop()
            transport = conn.transport
            if transport is not None and not transport.is_closing():
                if _quiet(transport):
                    return conn
                conn.close()
        return None

    def release(self, conn: UpstreamConnection) -> None:
        conn.sink = None
        conn.deadline.disarm()
        transport = conn.transport
        if self.closed or transport is None or transport.is_closing():
            conn.close()
            return
        stack = self._idle.setdefault(conn.addr, [])
        if len(stack) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        stack.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.idle_timeout / 2, self._sweep)

    def forget(self, conn: UpstreamConnection) -> None:
        stack = self._idle.get(conn.addr)
        if stack and conn in stack:
            stack.remove(conn)

    async def open(self, addr: Address, within: float) -> UpstreamConnection:
        async with asyncio.timeout(within):
            _, proto = await self.loop.create_connection(
                lambda: UpstreamConnection(self, addr), addr[0], addr[1]
            )
        return proto

    def _sweep(self) -> None:
        self._sweeper = None
        cutoff = self.loop.time() - self.idle_timeout
        for addr, stack in list(self._idle.items()):
            keep = [c for c in stack if c.idle_since > cutoff]
            for conn in stack:
                if conn.idle_since <= cutoff:
                    conn.close()
            if keep:
                self._idle[addr] = keep
            else:
                del self._idle[addr]
        if self._idle:
            self._sweeper = self.loop.call_later(self.idle_timeout / 2, self._sweep)

    def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for stack in self._idle.values():
            for conn in stack:
                conn.close()
        self._idle.clear()


def _quiet(transport: asyncio.Transport) -> bool:
    """An idle connection has nothing to read. Readable means the backend closed it (EOF or
    reset the event loop has not handled yet) or sent bytes unasked: either way a request sent
    on it could be lost after the backend got it, so it is not used (one poll, no waiting)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    fd = sock.fileno()
    if fd < 0:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return not poller.poll(0)
