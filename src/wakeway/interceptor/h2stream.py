"""One HTTP/2 stream of a client connection (:mod:`.h2connection`): the
:class:`~.exchange.ClientSide` of its exchange. It frames the exchange's response events as
HTTP/2 (a gRPC call's own answers as trailers-only gRPC statuses), paces the response by the
client's windows (holding back the backend meanwhile), and acknowledges request DATA only as it
goes on to the backend.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError

from .exchange import DONE, SENDING, Exchange
from .headers import HOP_BY_HOP, VIA_VALUE, Framing, HeadFacts, RawHeaders
from .pages import Page, grpc_status, grpc_trailers_only
from .upstream_h2 import h2_field

# Fields that describe one HTTP/1.1 connection and must not appear in HTTP/2 (RFC 9113 8.2.2).
NOT_IN_H2 = HOP_BY_HOP | {b"host", b"http2-settings"}


class StreamOwner(Protocol):
    """What a stream uses of its connection (``H2ClientConnection``)."""

    h2: H2Connection
    client_ip: bytes
    proto: bytes
    write_paused: bool

    def flush(self) -> None: ...
    def begin_batch(self) -> bool: ...
    def end_batch(self) -> None: ...
    def reset(self, stream: H2Stream, code: ErrorCodes) -> None: ...
    def settle(self, stream: H2Stream) -> None: ...


def is_grpc(headers: RawHeaders) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"application/grpc")
    return False


class H2Stream:
    """One stream: the :class:`~.exchange.ClientSide` of its exchange."""

    __slots__ = (
        "client_ip",
        "conn",
        "end_pending",
        "ex",
        "grpc",
        "out_done",
        "paused",
        "pending",
        "proto",
        "reset",
        "sid",
        "trailers",
        "unacked",
        "up_paused",
        "write_paused",
    )

    def __init__(self, conn: StreamOwner, sid: int) -> None:
        self.conn = conn
        self.sid = sid
        self.client_ip = conn.client_ip
        self.proto = conn.proto
        self.write_paused = conn.write_paused
        self.ex: Exchange | None = None
        self.grpc = False
        self.pending: deque[bytes] = deque()  # response body the client's windows hold back
        self.end_pending: tuple[RawHeaders | None] | None = None  # the end, after pending
        self.out_done = False  # the response's last frame is sent
        self.reset = False
        self.paused = 0  # exchange.Pause bits: while set, received data is not acknowledged
        self.unacked = 0
        self.up_paused = False
        self.trailers: RawHeaders | None = None

    # -- the response (ClientSide) ----------------------------------------------------------
    def send_head(
        self,
        status: int,
        reason: bytes,
        headers: RawHeaders,
        facts: HeadFacts,
        *,
        framing: Framing,
        keep_alive: bool,
        cold_start: bool | None,
        via: bool,
    ) -> None:
        if self.reset or self.out_done or status == 101:
            return
        if status < 200:
            return  # interim responses are not relayed over HTTP/2
        drop = NOT_IN_H2 | facts.connection if facts.connection else NOT_IN_H2
        fields: list[tuple[bytes, bytes]] = [(b":status", b"%d" % status)]
        for name, value in headers:
            low = name.lower()
            if low in drop or low[:6] == b"proxy-":
                continue
            if low == b"content-length" and framing not in ("length", "none"):
                continue
            fields.append(h2_field(low, value))
        if via:
            fields.append((b"via", VIA_VALUE))
        if cold_start is not None:
            fields.append((b"x-wakeway-cold-start", b"true" if cold_start else b"false"))
        end = framing == "none"
        try:
            self.conn.h2.send_headers(self.sid, fields, end_stream=end)
        except ProtocolError:
            self._broken()
            return
        if end:
            self._out_finished()
        self.conn.flush()

    def send_body(self, data: bytes, chunked: bool) -> None:
        if self.reset or self.out_done:
            return
        self.pending.append(data)
        self._push()
        self.conn.flush()

    def send_end(self, chunked: bool, trailers: RawHeaders | None) -> None:
        if self.reset or self.out_done or self.end_pending is not None:
            return
        self.end_pending = (trailers,)
        self._push()
        self.conn.flush()

    def send_page(
        self, page: Page, *, keep_alive: bool, cold_start: bool | None, head_only: bool
    ) -> None:
        if self.reset or self.out_done:
            return
        try:
            self._page(page, cold_start, head_only)
        except ProtocolError:
            self._broken()
            return
        self.conn.flush()

    def _page(self, page: Page, cold_start: bool | None, head_only: bool) -> None:
        h2 = self.conn.h2
        if self.grpc:
            # A gRPC client reads only a status: a trailers-only response (gRPC over HTTP/2).
            ex = self.ex
            code = grpc_status(page.status, deadline=ex is not None and ex.deadline_passed())
            fields = [h2_field(n, v) for n, v in grpc_trailers_only(code, page.body, cold_start)]
            h2.send_headers(self.sid, fields, end_stream=True)
            self._out_finished()
        else:
            fields = [(b":status", b"%d" % page.status)]
            fields += [h2_field(n, v) for n, v in page.fields(cold_start)]
            h2.send_headers(self.sid, fields, end_stream=head_only or not page.body)
            if head_only or not page.body:
                self._out_finished()
            else:
                self.pending.append(page.body)
                self.end_pending = (None,)
                self._push()

    def write(self, data: bytes) -> None:
        """Tunnels do not exist on HTTP/2 streams (the exchange never offers an upgrade)."""

    def begin_batch(self) -> bool:
        return self.conn.begin_batch()

    def end_batch(self) -> None:
        self.conn.end_batch()

    def close(self) -> None:
        """Only a tunnel closes its client; a stream has none."""

    def abort(self) -> None:
        """The response cannot be completed: reset the stream (the connection lives on)."""
        if not self.reset and not self.out_done:
            self.conn.reset(self, ErrorCodes.INTERNAL_ERROR)
            self.conn.flush()

    def pause_reading_for(self, reason: int, on: bool) -> None:
        self.paused = (self.paused | reason) if on else (self.paused & ~reason)
        if not self.paused:
            self.acknowledge()
            self.conn.flush()

    def start_tunnel(self, ex: Exchange) -> None:
        raise AssertionError("no upgrade is forwarded from an HTTP/2 stream")

    def exchange_done(self, ex: Exchange) -> None:
        self.conn.settle(self)

    # -- flow control -----------------------------------------------------------------------
    def received(self, data: bytes, flow: int) -> None:
        """A DATA frame's payload (``flow`` bytes of window, padding included)."""
        self.unacked += flow
        ex = self.ex
        if data and ex is not None and ex.phase is not DONE and not ex.body_done:
            ex.feed_body(data)  # (an empty chunk would end a chunked body)
        self.acknowledge()

    def acknowledge(self) -> None:
        """Open the window for what went on to the backend (or was dropped)."""
        n = self.unacked
        if not n:
            return
        ex = self.ex
        gone = ex is None or ex.phase is DONE or self.reset
        if gone or (not self.paused and ex is not None and ex.phase is SENDING and ex.upstream):
            self.unacked = 0
            self.conn.h2.acknowledge_received_data(n, self.sid)

    def _push(self) -> None:
        """Send what the windows admit; hold back the backend while anything waits."""
        try:
            self._send_admitted()
        except ProtocolError:
            self._broken()
            return
        self.sync_upstream()

    def _broken(self) -> None:
        """h2 sends nothing more on this stream (reset, or the connection is closing)."""
        self.reset = True
        self.pending.clear()
        self.conn.settle(self)

    def _send_admitted(self) -> None:
        h2 = self.conn.h2
        pending = self.pending
        while pending:
            room = min(h2.local_flow_control_window(self.sid), h2.max_outbound_frame_size)
            if room <= 0:
                break
            data = pending[0]
            if len(data) <= room:
                pending.popleft()
                h2.send_data(self.sid, data)
            else:
                h2.send_data(self.sid, data[:room])
                pending[0] = data[room:]
        if not pending and self.end_pending is not None:
            (trailers,) = self.end_pending
            fields = trailer_fields(trailers) if trailers else None
            if fields:
                h2.send_headers(self.sid, fields, end_stream=True)
            else:
                h2.end_stream(self.sid)
            self._out_finished()

    def sync_upstream(self) -> None:
        """The backend connection reads only while the client can take what it sends."""
        want = bool(self.pending) or self.write_paused
        if want is self.up_paused:
            return
        ex = self.ex
        up = None if ex is None else ex.upstream
        transport = None if up is None else up.transport
        if transport is None:
            self.up_paused = False
            return
        self.up_paused = want
        if want:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def _out_finished(self) -> None:
        self.out_done = True
        self.pending.clear()
        self.conn.settle(self)


def trailer_fields(trailers: RawHeaders) -> list[tuple[bytes, bytes]]:
    return [
        h2_field(low, value)
        for low, value in ((n.lower(), v) for n, v in trailers)
        if low not in NOT_IN_H2 and low[:1] != b":"
    ]
