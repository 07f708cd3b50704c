"""Backends that speak HTTP/2 without TLS (h2c; a Service port's ``appProtocol`` says so): one
connection per endpoint, its streams shared by every exchange that goes there.

An exchange talks to every backend the same way: it writes an HTTP/1.1 request (head, body,
chunked framing and trailers) and receives the response through its
:class:`~.upstream.ResponseSink`. An :class:`H2UpstreamStream` is such a backend connection for
one exchange: it reads the HTTP/1.1 request it is given with httptools and sends it as HTTP/2
frames on its endpoint's shared connection (:class:`H2Backend`), and hands the response's
events to the sink. So the exchange's decisions (hold, retry, timeouts) are the same for both.

Flow control: request bytes the backend's windows do not admit wait on the stream, and the
exchange is told to stop reading its client (``upstream_paused``) until a WINDOW_UPDATE makes
room. Response DATA is acknowledged as the client takes it: while the exchange has paused
"reading" this stream (its client cannot take more), nothing is acknowledged.

:class:`MixedPool` is the pool the proxy state uses: HTTP/1.1 endpoints are pooled by
:class:`~.upstream.Pool`, h2c endpoints (``h2c``, set with the endpoint view) get a stream on
their shared connection (a second connection only when the first has no stream left).

:class:`WriteBatch` is shared by every HTTP/2 connection of the process (clients' and
backends'): while one read is handled, what h2 queues for each connection goes out in one write
when the read is done, not one per event.

About 500 lines: the stream, its shared connection and the pool that chooses between h2c and
HTTP/1.1 hand flow-control state to each other and are kept together.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol, cast

import httptools
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    InformationalResponseReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings
from hpack import NeverIndexedHeaderTuple

from .headers import HOP_BY_HOP
from .upstream import Address, Pool, UpstreamConnection, format_address

NOT_IN_H2 = HOP_BY_HOP | {b"host"}
RECEIVE_WINDOW = 1 << 20  # per stream; the connection's is this times the stream limit
CONNECTION_WINDOW = (1 << 31) - 1
# Connections one request may wait for when those before it are full (each brings the backend's
# whole stream limit, so more than a couple means the backend refuses streams altogether).
H2_CONNECT_ATTEMPTS = 4
GRPC_STATUS_FIELDS = (b"grpc-status", b"grpc-message", b"grpc-status-details-bin")
CREDENTIALS = frozenset({b"authorization", b"proxy-authorization"})


def h2_config(*, client_side: bool) -> H2Configuration:
    """h2's settings for both ends. Received headers are validated by h2 (RFC 9113 section
    8.2: characters, pseudo-header fields, connection-specific fields). Headers sent are built
    by this package, which already gives what h2's outbound checks and normalisation would
    (lowercase names, no connection-specific field, ``te`` only as ``trailers``, pseudo-header
    fields first and once): :func:`h2_field` does the rest, without h2's chain of generators
    per field."""
    return H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_inbound_headers=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def h2_field(low: bytes, value: bytes) -> tuple[bytes, bytes]:
    """A field to send over HTTP/2 (``low``: its lowercase name), as h2's outbound
    normalisation made it: the value without surrounding whitespace (HTTP/1.1 parsers keep
    trailing whitespace, HTTP/2 forbids it), credentials and short cookies never indexed by HPACK
    (kept out of the compression context, as h2 and nghttp2 do)."""
    value = value.strip()
    if low in CREDENTIALS or (low == b"cookie" and len(value) < 20):
        return NeverIndexedHeaderTuple(low, value)
    return (low, value)


class Flushable(Protocol):
    """An HTTP/2 connection whose queued frames a :class:`WriteBatch` sends."""

    queued: bool  # in a batch's list

    def write_out(self) -> None: ...


class WriteBatch:
    """Writes collected across HTTP/2 connections while one read is handled.

    A read on one connection makes frames for others (a client's request becomes a backend's
    HEADERS and DATA; a backend's response a client's HEADERS, DATA and trailers, and
    WINDOW_UPDATEs both ways). Between :meth:`begin` and the :meth:`end` that closes the
    outermost batch, a connection with frames to send is only noted; at the end each sends
    what h2 holds for it in one ``transport.write``. Outside a batch, frames go out at once.
    """

    __slots__ = ("depth", "dirty")

    def __init__(self) -> None:
        self.depth = 0
        self.dirty: list[Flushable] = []

    def begin(self) -> None:
        self.depth += 1

    def end(self) -> None:
        self.depth -= 1
        if self.depth:
            return
        while self.dirty:  # a write can call back (pause_writing) and queue more
            dirty = self.dirty
            self.dirty = []
            for conn in dirty:
                conn.queued = False
            for conn in dirty:
                conn.write_out()

    def flush(self, conn: Flushable) -> None:
        """Send ``conn``'s frames now, or at the end of the batch."""
        if not self.depth:
            conn.write_out()
        elif not conn.queued:
            conn.queued = True
            self.dirty.append(conn)


class _Reading:
    """What an exchange sees as its backend's transport: pausing it stops acknowledging the
    stream's DATA, so the backend's window closes."""

    __slots__ = ("stream",)

    def __init__(self, stream: H2UpstreamStream) -> None:
        self.stream = stream

    def pause_reading(self) -> None:
        self.stream.reading = False

    def resume_reading(self) -> None:
        self.stream.reading = True
        self.stream.acknowledge()

    def is_closing(self) -> bool:
        return self.stream.ended

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class _RequestReader:
    """httptools callbacks for the HTTP/1.1 request an exchange writes."""

    __slots__ = ("stream",)

    def __init__(self, stream: H2UpstreamStream) -> None:
        self.stream = stream

    def on_url(self, url: bytes) -> None:
        self.stream.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        stream = self.stream
        (stream.req_trailers if stream.head_read else stream.req_headers).append((name, value))

    def on_headers_complete(self) -> None:
        self.stream.head_read = True

    def on_body(self, body: bytes) -> None:
        self.stream.request_body(body)

    def on_message_complete(self) -> None:
        self.stream.request_end()


class H2UpstreamStream(UpstreamConnection):
    """One exchange's stream on an :class:`H2Backend`, presented as a backend connection."""

    __slots__ = (
        "backend",
        "blocked",
        "ended",
        "head_read",
        "head_sent",
        "out",
        "reader",
        "reading",
        "req_done",
        "req_headers",
        "req_trailers",
        "sid",
        "unacked",
        "url",
    )

    def __init__(self, backend: H2Backend) -> None:
        super().__init__(backend.pool, backend.addr)
        self.backend = backend
        self.sid = 0  # given when its head is sent (h2 numbers streams in the order sent)
        self.req_done = False
        self.url = b""
        self.req_headers: list[tuple[bytes, bytes]] = []
        self.req_trailers: list[tuple[bytes, bytes]] = []
        self.head_read = False
        self.head_sent = False
        self.out: deque[bytes] = deque()  # request body the backend's windows hold back
        self.blocked = False
        self.ended = False  # the stream is over (ended both ways, or reset)
        self.reading = True
        self.unacked = 0
        self.reader: Any = httptools.HttpRequestParser(_RequestReader(self))
        self.transport = cast(asyncio.Transport, _Reading(self))

    # -- what the exchange calls (an UpstreamConnection's surface) --------------------------
    def write(self, data: bytes) -> None:
        if self.ended:
            return
        try:
            self.reader.feed_data(data)
            if self.head_read and not self.head_sent:
                self._send_head(False)
        except httptools.HttpParserUpgrade:
            pass  # an upgrade is never offered to an HTTP/2 backend; nothing follows
        except (httptools.HttpParserError, ProtocolError) as exc:
            self._reset(ErrorCodes.INTERNAL_ERROR)
            self.lost(ConnectionError(f"request to an h2c backend: {exc}"))
            return
        self.backend.flush()

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def close(self) -> None:
        """The exchange is done with the stream: cancel what is still open of it."""
        self.deadline.cancel()
        if not self.ended:
            self._reset(ErrorCodes.CANCEL)

    def abort(self) -> None:
        self.sink = None
        self.close()

    # -- the request, read from the exchange's HTTP/1.1 ------------------------------------
    def _send_head(self, end: bool) -> None:
        self.head_sent = True
        backend = self.backend
        backend.reserved -= 1
        self.sid = backend.h2.get_next_available_stream_id()
        backend.streams[self.sid] = self
        self.req_done = end
        method = self.reader.get_method()
        authority = b""
        fields: list[tuple[bytes, bytes]] = []
        grpc = False
        for name, value in self.req_headers:
            low = name.lower()
            if low == b"host":
                authority = value
            elif low not in NOT_IN_H2:
                fields.append(h2_field(low, value))
                if low == b"content-type" and value.startswith(b"application/grpc"):
                    grpc = True
        if grpc:
            fields.append((b"te", b"trailers"))  # gRPC servers ask for it
        head = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":authority", authority),
            (b":path", self.url),
        ]
        backend.h2.send_headers(self.sid, head + fields, end_stream=end)

    def request_body(self, data: bytes) -> None:
        if not self.head_sent:
            self._send_head(False)
        self.out.append(data)
        self.push()

    def request_end(self) -> None:
        if not self.head_sent:
            self._send_head(True)
            return
        self.out.append(b"")  # the end marker
        self.push()

    def push(self) -> None:
        """Send what the backend's windows admit; pause the client while anything waits."""
        h2 = self.backend.h2
        out = self.out
        while out:
            data = out[0]
            if not data:  # the end
                out.popleft()
                trailers = [
                    h2_field(n.lower(), v)
                    for n, v in self.req_trailers
                    if n.lower() not in NOT_IN_H2
                ]
                if trailers:
                    h2.send_headers(self.sid, trailers, end_stream=True)
                else:
                    h2.end_stream(self.sid)
                self.req_done = True
                break
            room = min(h2.local_flow_control_window(self.sid), h2.max_outbound_frame_size)
            if room <= 0:
                break
            if len(data) <= room:
                out.popleft()
                h2.send_data(self.sid, data)
            else:
                h2.send_data(self.sid, data[:room])
                out[0] = data[room:]
        blocked = bool(out)
        if blocked is not self.blocked:
            self.blocked = blocked
            if self.sink is not None:
                self.sink.upstream_paused(blocked)

    # -- the response -----------------------------------------------------------------------
    def response_head(self, headers: list[tuple[bytes, bytes]], ended: bool) -> None:
        self.deadline.disarm()
        status = 0
        fields: list[tuple[bytes, bytes]] = []
        trailers: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name == b":status":
                status = int(value)
            elif name[:1] != b":":
                # A trailers-only gRPC response (status in the head, no body) reaches the
                # client as a head and trailers: both are valid gRPC over HTTP/2.
                (trailers if ended and name in GRPC_STATUS_FIELDS else fields).append((name, value))
        self.trailers = trailers or None
        sink = self.sink
        if sink is not None and sink.on_response_head(self, status, b"", fields):
            self.sink = None  # a HEAD response: it ended at its head

    def response_data(self, data: bytes, flow: int) -> None:
        self.unacked += flow
        sink = self.sink
        if sink is not None and data:
            sink.on_response_body(data)
        self.acknowledge()

    def acknowledge(self) -> None:
        n = self.unacked
        if n and (self.reading or self.sink is None) and not self.backend.closed:
            self.unacked = 0
            with contextlib.suppress(ProtocolError):
                self.backend.h2.acknowledge_received_data(n, self.sid)
            self.backend.flush()

    def response_end(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        if trailers is not None:
            self.trailers = trailers
        sink = self.sink
        if not self.req_done:
            # The response is complete before the request (a server that answered early):
            # the rest of the request is not wanted (RFC 9113 section 8.1).
            self._reset(ErrorCodes.NO_ERROR)
        self.ended = True
        self.backend.forget(self)
        if sink is not None:
            sink.on_response_end(self)

    def lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.deadline.cancel()
        self.backend.forget(self)
        sink = self.sink
        self.sink = None
        if sink is not None:
            sink.on_upstream_lost(self, exc)

    def _reset(self, code: ErrorCodes) -> None:
        self.ended = True
        self.out.clear()
        backend = self.backend
        if not self.head_sent:
            self.head_sent = True
            backend.reserved -= 1  # nothing of it was sent
            return
        backend.forget(self)
        if not backend.closed:
            with contextlib.suppress(ProtocolError):
                backend.h2.reset_stream(self.sid, code)
            backend.flush()


class H2Backend(asyncio.Protocol):
    """One h2c connection to one endpoint, multiplexing the streams of many exchanges."""

    def __init__(self, pool: MixedPool, addr: Address) -> None:
        self.pool = pool
        self.addr = addr
        self.batch = pool.writes
        self.queued = False
        self.h2 = H2Connection(h2_config(client_side=True))
        # Initial values, not an update: an update is sent only after it is acknowledged.
        self.h2.local_settings = Settings(
            client=True,
            initial_values={
                SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW,
                SettingCodes.ENABLE_PUSH: 0,
                SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            },
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2UpstreamStream] = {}
        self.reserved = 0  # streams handed out whose head is not sent yet
        self.closed = False
        self.goaway = False

    def usable(self) -> bool:
        """May a new stream be opened here now?"""
        if self.closed or self.goaway or self.transport is None:
            return False
        # Our own count: every stream h2 counts as open is in ``streams`` until it ends or is
        # reset (h2's open_outbound_streams walks all its streams, on every request).
        limit = self.h2.remote_settings.max_concurrent_streams
        return len(self.streams) + self.reserved < limit

    def open_stream(self) -> H2UpstreamStream:
        self.reserved += 1
        return H2UpstreamStream(self)

    def forget(self, stream: H2UpstreamStream) -> None:
        if self.streams.get(stream.sid) is stream:
            del self.streams[stream.sid]

    def flush(self) -> None:
        self.batch.flush(self)

    def write_out(self) -> None:
        if self.transport is None or self.closed or self.transport.is_closing():
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(ProtocolError):
                self.h2.close_connection()
            self.write_out()
            self.transport.close()

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self.write_out()
            self._fail(ConnectionError(f"h2c backend {format_address(self.addr)}: {exc}"))
            return
        batch = self.batch
        batch.begin()
        try:
            for event in events:
                self._on_event(event)
        finally:
            batch.flush(self)  # what h2 answered itself (SETTINGS and PING acks, windows)
            batch.end()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc)

    def pause_writing(self) -> None:
        for stream in list(self.streams.values()):
            if stream.sink is not None:
                stream.sink.upstream_paused(True)

    def resume_writing(self) -> None:
        for stream in list(self.streams.values()):
            if stream.sink is not None and not stream.blocked:
                stream.sink.upstream_paused(False)

    def _fail(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.pool.forget_backend(self)
        if self.transport is not None:
            self.transport.close()
        for stream in list(self.streams.values()):
            stream.lost(exc)
        self.streams.clear()

    def _on_event(self, event: Event) -> None:
        sid = getattr(event, "stream_id", None) or 0
        stream = self.streams.get(sid)
        if isinstance(event, DataReceived):
            if stream is not None:
                stream.response_data(event.data or b"", event.flow_controlled_length or 0)
            else:
                with contextlib.suppress(ProtocolError):
                    self.h2.acknowledge_received_data(event.flow_controlled_length or 0, sid)
        elif isinstance(event, ResponseReceived):
            if stream is not None:
                stream.response_head(event.headers or [], event.stream_ended is not None)
        elif isinstance(event, TrailersReceived):
            if stream is not None:
                stream.trailers = [(n, v) for n, v in event.headers or [] if n[:1] != b":"]
        elif isinstance(event, StreamEnded):
            if stream is not None:
                stream.response_end(None)
        elif isinstance(event, StreamReset):
            if stream is not None:
                stream.lost(
                    ConnectionResetError(f"stream reset by the backend ({event.error_code!s})")
                )
        elif isinstance(event, WindowUpdated | RemoteSettingsChanged):
            targets = [stream] if stream is not None else list(self.streams.values())
            for s in targets:
                if s.out:
                    s.push()
        elif isinstance(event, ConnectionTerminated):
            self.goaway = True
            last = event.last_stream_id or 0
            for s in [s for i, s in self.streams.items() if i > last]:
                s.lost(ConnectionResetError("the backend sent GOAWAY before this stream"))
            if not self.streams:
                self.close()
        elif isinstance(event, InformationalResponseReceived):
            pass  # interim responses are not relayed from HTTP/2 backends


class MixedPool(Pool):
    """HTTP/1.1 endpoints pooled as :class:`~.upstream.Pool` does; h2c endpoints (``h2c``)
    multiplexed on one connection each."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_idle: int, idle_timeout: float) -> None:
        super().__init__(loop, max_idle, idle_timeout)
        self.h2c: frozenset[Address] = frozenset()
        self.writes = WriteBatch()  # shared with the HTTP/2 client connections
        self._backends: dict[Address, list[H2Backend]] = {}
        self._connecting: dict[Address, asyncio.Task[H2Backend]] = {}

    def acquire(self, addr: Address) -> UpstreamConnection | None:
        if addr not in self.h2c:
            return super().acquire(addr)
        for backend in self._backends.get(addr, ()):
            if backend.usable():
                return backend.open_stream()
        return None

    def release(self, conn: UpstreamConnection) -> None:
        if isinstance(conn, H2UpstreamStream):
            conn.sink = None
            conn.deadline.cancel()
            if not conn.head_sent:
                conn.backend.reserved -= 1  # handed out, never used
                conn.head_sent = True
            return
        super().release(conn)

    async def open(self, addr: Address, within: float) -> UpstreamConnection:
        if addr not in self.h2c:
            return await super().open(addr, within)
        async with asyncio.timeout(within):
            # Requests that arrive together share one connection attempt; those it cannot take
            # (the backend's stream limit, known once it is open) share the next one.
            for _ in range(H2_CONNECT_ATTEMPTS):
                task = self._connecting.get(addr)
                if task is None:
                    task = self.loop.create_task(self._connect(addr))
                    self._connecting[addr] = task
                    task.add_done_callback(lambda _t: self._connecting.pop(addr, None))
                backend = await asyncio.shield(task)
                if backend.usable():
                    return backend.open_stream()
                stream = self.acquire(addr)
                if stream is not None:
                    return stream
        raise ConnectionError(f"h2c backend {format_address(addr)} takes no more streams")

    async def _connect(self, addr: Address) -> H2Backend:
        _, backend = await self.loop.create_connection(
            lambda: H2Backend(self, addr), addr[0], addr[1]
        )
        self._backends.setdefault(addr, []).append(backend)
        return backend

    def forget_backend(self, backend: H2Backend) -> None:
        backends = self._backends.get(backend.addr)
        if backends and backend in backends:
            backends.remove(backend)
            if not backends:
                del self._backends[backend.addr]

    def close(self) -> None:
        super().close()
        for backends in list(self._backends.values()):
            for backend in list(backends):
                backend.close()
        self._backends.clear()
