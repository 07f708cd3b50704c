"""The client side over HTTP/2 (h2c): one connection, many streams, each running an
:class:`~.exchange.Exchange` exactly as an HTTP/1.1 request does. The framing is the ``h2``
library's (sans-I/O); this module moves bytes and maps its events to the streams'
(:class:`~.h2stream.H2Stream`, each its exchange's client side).

An HTTP/2 connection starts either with the client's connection preface on the HTTP/1.1
listener (prior knowledge; :class:`~.connection.ClientConnection` hands the transport over) or
with ``Upgrade: h2c`` on a request without a body (RFC 7540 section 3.2): that request becomes
stream 1.

Flow control both ways:

- Request bodies: a DATA frame is acknowledged (a WINDOW_UPDATE) only once its bytes went to
  the backend's socket and that socket's buffer is not full; while a request is held or its
  backend connection is being opened, nothing is acknowledged, so the client's stream window
  (``max_buffered_body``) bounds what is buffered.
- Response bodies: what the client's windows do not admit waits on the stream, and the stream
  stops reading its backend connection until a WINDOW_UPDATE makes room; a full socket buffer
  toward the client stops every stream's backend.

RST_STREAM from the client cancels that stream's exchange (its backend connection is dropped);
an exchange that must break its response resets its stream. A drain sends GOAWAY and closes once
the streams it admitted are answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from .exchange import DONE, SENDING, Exchange
from .h2stream import H2Stream, is_grpc, trailer_fields
from .headers import grpc_timeout, scan
from .state import ProxyState
from .timers import Deadline
from .upstream_h2 import h2_config

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_WINDOW = (1 << 31) - 1


class H2ClientConnection(asyncio.Protocol):
    """One client connection speaking HTTP/2: h2c, or h2 when TLS negotiated it by ALPN."""

    def __init__(self, state: ProxyState, client_ip: bytes, proto: bytes = b"http") -> None:
        self.state = state
        self.client_ip = client_ip
        self.proto = proto
        settings = state.settings
        self.window = min(settings.max_buffered_body, MAX_WINDOW)
        self.h2 = H2Connection(h2_config(client_side=False))
        self.h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: settings.h2_max_concurrent_streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_bytes,
                SettingCodes.INITIAL_WINDOW_SIZE: self.window,
                SettingCodes.ENABLE_PUSH: 0,
            },
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.write_paused = False
        self.closed = False
        self.draining = False
        self.batch = state.h2_writes
        self.queued = False
        self.deadline = Deadline(state.loop, self._on_idle)

    # -- start ------------------------------------------------------------------------------
    def take_over(
        self, transport: asyncio.Transport, upgrade: tuple[Exchange, bytes] | None
    ) -> None:
        """Serve ``transport`` (handed over by the HTTP/1.1 connection). ``upgrade``: the
        request that offered ``Upgrade: h2c`` and its decoded HTTP2-Settings; it becomes
        stream 1, and the 101 response goes out first."""
        self.transport = transport
        self.state.connections.add(self)
        h2 = self.h2
        if upgrade is None:
            h2.initiate_connection()
        else:
            transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            )
            h2.initiate_upgrade_connection(upgrade[1])
        # Room on the connection for every stream's window: one held stream must not stall
        # the others.
        streams = self.state.settings.h2_max_concurrent_streams
        extra = min(self.window * streams, MAX_WINDOW) - 65535
        if extra > 0:
            h2.increment_flow_control_window(extra)
        if upgrade is not None:
            ex = upgrade[0]
            ex.upgrade = False
            ex.headers = [(n, v) for n, v in ex.headers if n.lower() != b"http2-settings"]
            stream = H2Stream(self, 1)
            stream.ex = ex
            ex.conn = stream
            stream.grpc = is_grpc(ex.headers)
            self.streams[1] = stream
            ex.begin()
        else:
            self.deadline.arm(self.state.settings.header_read_timeout)
        self.flush()

    # -- asyncio.Protocol -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except ProtocolError:
            self._close()  # with the GOAWAY h2 queued
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
        self.closed = True
        self.deadline.cancel()
        self.state.connections.discard(self)
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.reset = True
            if stream.ex is not None:
                stream.ex.client_gone()

    def pause_writing(self) -> None:
        self._writing(paused=True)

    def resume_writing(self) -> None:
        self._writing(paused=False)

    def _writing(self, *, paused: bool) -> None:
        self.write_paused = paused
        for stream in list(self.streams.values()):
            stream.write_paused = paused
            stream.sync_upstream()

    # -- events -----------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if isinstance(event, DataReceived):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.received(event.data or b"", event.flow_controlled_length or 0)
            else:
                self.h2.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id or 0
                )
        elif isinstance(event, RequestReceived):
            self._request(event.stream_id or 0, event.headers or [], event.stream_ended is not None)
        elif isinstance(event, TrailersReceived):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.trailers = trailer_fields(event.headers or [])
        elif isinstance(event, StreamEnded):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None and stream.ex is not None and not stream.ex.body_done:
                stream.ex.body_end(stream.trailers)
        elif isinstance(event, StreamReset):
            stream = self.streams.pop(event.stream_id or 0, None)
            if stream is not None:
                stream.reset = True
                if stream.ex is not None:
                    stream.ex.client_gone()
                self._maybe_idle()
        elif isinstance(event, WindowUpdated):
            sid = event.stream_id or 0
            targets = list(self.streams.values()) if sid == 0 else [self.streams.get(sid)]
            for stream in targets:
                if stream is not None and stream.pending:
                    stream._push()
        elif isinstance(event, RemoteSettingsChanged):
            if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                for stream in list(self.streams.values()):
                    if stream.pending:
                        stream._push()
        elif isinstance(event, ConnectionTerminated):
            # The client is going away (h2 sends nothing after a GOAWAY either way).
            self.draining = True
            self._close()

    def _request(self, sid: int, raw: Iterable[tuple[bytes, bytes]], ended: bool) -> None:
        if self.draining:
            self.h2.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        self.deadline.disarm()
        stream = H2Stream(self, sid)
        ex = Exchange(stream, self.state)
        stream.ex = ex
        self.streams[sid] = stream
        method = path = authority = b""
        headers: list[tuple[bytes, bytes]] = []
        cookies: list[bytes] = []
        size = 0
        for name, value in raw:
            size += len(name) + len(value) + 32
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":authority":
                    authority = value
            elif name == b"cookie":
                cookies.append(value)  # one field on HTTP/1.1 (RFC 9113 section 8.2.3)
            else:
                headers.append((name, value))
        if cookies:
            headers.append((b"cookie", b"; ".join(cookies)))
        if authority and not any(n == b"host" for n, _ in headers):
            headers.insert(0, (b"host", authority))
        ex.method = method
        ex.url = path
        ex.headers = headers
        ex.header_bytes = size
        ex.start = self.state.loop.time()
        facts = scan(headers)
        ex.facts = facts
        stream.grpc = is_grpc(headers)
        limit = self.state.settings.max_headers
        if method == b"CONNECT":
            ex.phase = SENDING
            ex.respond(405, "CONNECT is not supported by this reverse proxy\n")
            return
        if len(headers) > limit:
            ex.phase = SENDING
            ex.respond(431, f"more than {limit} request header fields\n")
            return
        if ended:
            ex.body_done = True
        elif facts.content_length is not None:
            ex.body_framing = "length"
        else:
            ex.body_framing = "chunked"
        timeout = grpc_timeout(headers) if stream.grpc else None
        if timeout is not None:
            ex.own_timeout = timeout
        ex.begin()

    # -- used by streams --------------------------------------------------------------------
    def begin_batch(self) -> bool:
        self.batch.begin()
        return True

    def end_batch(self) -> None:
        self.batch.end()

    def flush(self) -> None:
        self.batch.flush(self)

    def write_out(self) -> None:
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return
        data = self.h2.data_to_send()
        if data:
            transport.write(data)

    def reset(self, stream: H2Stream, code: ErrorCodes) -> None:
        stream.reset = True
        stream.pending.clear()
        if not self.closed:
            with contextlib.suppress(ProtocolError):
                self.h2.reset_stream(stream.sid, code)
        self.settle(stream)

    def settle(self, stream: H2Stream) -> None:
        """Forget ``stream`` once its exchange is done and its response sent (or reset). A
        response complete before its request (an early answer) resets the request side."""
        ex = stream.ex
        if ex is None or ex.phase is not DONE or not (stream.out_done or stream.reset):
            return
        if self.streams.get(stream.sid) is not stream:
            return
        del self.streams[stream.sid]
        if not stream.reset and not ex.body_done and not self.closed:
            stream.reset = True
            with contextlib.suppress(ProtocolError):
                self.h2.reset_stream(stream.sid, ErrorCodes.NO_ERROR)
        with contextlib.suppress(ProtocolError):
            stream.acknowledge()
        self._maybe_idle()

    # -- ending -----------------------------------------------------------------------------
    def drain(self) -> None:
        """GOAWAY: the streams admitted so far are answered, no new one is taken."""
        if self.closed or self.draining:
            return
        self.draining = True
        self.write_out()
        # Written beside h2, whose state machine sends nothing more after its own GOAWAY:
        # the streams admitted so far still get their answers (RFC 9113 section 6.8).
        goaway = GoAwayFrame(0, last_stream_id=self.h2.highest_inbound_stream_id)
        if self.transport is not None:
            self.transport.write(goaway.serialize())
        self._maybe_idle()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _maybe_idle(self) -> None:
        if self.streams or self.closed:
            return
        if self.draining:
            self._close()
        else:
            self.deadline.arm(self.state.settings.keepalive_timeout)

    def _on_idle(self) -> None:
        if self.streams or self.closed:
            return
        self.h2.close_connection(ErrorCodes.NO_ERROR)
        self._close()

    def _close(self) -> None:
        self.deadline.cancel()
        self.write_out()  # what h2 still holds goes out before the FIN
        if self.transport is not None and not self.closed:
            self.transport.close()


def is_preface_start(data: bytes) -> bool:
    """``data`` is the client connection preface or its beginning."""
    return PREFACE.startswith(data[:24]) and bool(data)
