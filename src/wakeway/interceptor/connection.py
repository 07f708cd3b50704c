"""The client side of the proxy: one HTTP/1.1 connection, its request parser (httptools) and
its pipelining queue. Requests are answered strictly in arrival order; each is an
:class:`~.exchange.Exchange`, whose own state machine runs the request.

A connection's life (:class:`Life`) only moves forward::

    OPEN ──bad request──▶ REFUSING ──answers sent──▶ LINGERING ──client EOF / limit──▶ CLOSED
      └──────────close (no keep-alive, drain, timeout)──▶ CLOSING / LINGERING ──────────▶ CLOSED

OPEN parses requests; REFUSING parses nothing more but still owes the answers queued before
the bad request; CLOSING takes no new request and closes the transport; LINGERING has sent its
FIN and discards (a bounded amount of) what the client still sends, so that a reset does not
destroy the answer before the client reads it (RFC 9112 section 9.6). Upgrades (``tunnel``,
``upgrading``) and the client's EOF are kept beside it: they are facts, not stages.

(About 600 lines: the httptools callbacks, the pipelining queue, the close and linger rules
and the HTTP/1.1 framing of the exchange's response events share the connection's state and
read best in one place.)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import socket
from collections import deque
from enum import IntEnum
from typing import Any, cast

import httptools

from .exchange import LAST_CHUNK, QUEUED, SENDING, Exchange, Pause, Rejection, chunk
from .h2connection import H2ClientConnection, is_preface_start
from .headers import Framing, HeadFacts, RawHeaders, request_refusal, response_head, scan
from .pages import Page, render, simple_response
from .state import ProxyState
from .timers import Deadline

# After refusing a request, how long and how much more the client may send before the close.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20


class Life(IntEnum):
    OPEN = 0
    REFUSING = 1
    CLOSING = 2
    LINGERING = 3
    CLOSED = 4


OPEN, REFUSING, CLOSING, LINGERING, CLOSED = Life  # the hot path compares with ``is`` and ``<``


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing; the connection answers and closes."""


class ClientConnection(asyncio.Protocol):
    """One client TCP connection; parses requests and runs their exchanges in order."""

    __slots__ = (
        "_advancing",
        "_body_after_upgrade",
        "_discarded",
        "_early",
        "_fresh",
        "_h2c",
        "_head_bytes",
        "_out",
        "_rejection",
        "_resuming",
        "client_ip",
        "cur",
        "deadline",
        "eof",
        "life",
        "parser",
        "paused",
        "proto",
        "queue",
        "reading_paused",
        "state",
        "transport",
        "tunnel",
        "upgrading",
        "write_paused",
    )

    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpRequestParser(self)
        self.queue: deque[Exchange] = deque()
        self.cur: Exchange | None = None
        self.paused = 0
        self.reading_paused = False
        self.write_paused = False
        self.life = OPEN
        self.eof = False
        self.tunnel: Exchange | None = None
        self.upgrading: Exchange | None = None
        self.client_ip = b"unknown"
        self.proto = b"http"
        self.deadline = Deadline(state.loop, self._on_timeout)
        self._advancing = False
        self._discarded = 0
        self._out: list[bytes] | None = None
        self._head_bytes = 0
        self._rejection: tuple[int, str] | None = None
        self._body_after_upgrade: Exchange | None = None
        self._resuming: Exchange | None = None
        self._fresh = True  # no byte read yet: it may be an HTTP/2 connection preface
        self._early = b""
        self._h2c: tuple[Exchange, bytes] | None = None  # an accepted Upgrade: h2c offer

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self.transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.client_ip = str(peer[0]).encode("latin-1")
        self.state.connections.add(self)
        self.deadline.arm(self.state.settings.header_read_timeout)
        tls = self.transport.get_extra_info("ssl_object")
        if tls is not None:
            self.proto = b"https"
            if tls.selected_alpn_protocol() == "h2":  # negotiated: HTTP/2 from the first byte
                self._to_h2(b"", None)

    def data_received(self, data: bytes) -> None:
        if self._fresh:
            data = self._sniff(data)
            if not data:
                return
        tunnel = self.tunnel
        if tunnel is not None:
            up = tunnel.upstream
            if up is not None:
                up.write(data)
            return
        upgrading = self.upgrading
        if upgrading is not None:
            if upgrading.upstream is not None and upgrading.phase is SENDING:
                upgrading.upstream.write(data)
            else:
                upgrading.tunnel_tail += data
            return
        life = self.life
        if life is not OPEN:
            if life is LINGERING:
                self._discarded += len(data)
                if self._discarded > LINGER_BYTES and self.transport is not None:
                    self.transport.close()
            return
        if self.cur is None or self.cur.facts is None:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0]
            if self._h2c is not None:
                self._to_h2(data[offset:], self._h2c)
                return
            pending = self._body_after_upgrade
            if pending is not None:
                self._read_body_again(pending, data[offset:])
                return
            ex = self.queue[-1] if self.queue else None
            if ex is not None and ex.upgrade:
                self.upgrading = ex
                ex.tunnel_tail += data[offset:]
                if ex.upstream is not None and ex.tunnel_tail and ex.phase is SENDING:
                    ex.upstream.write(ex.tunnel_tail)
                    ex.tunnel_tail = b""
        except httptools.HttpParserError as exc:
            rejection = self._rejection
            if rejection is not None:
                self._reject(*rejection)
            elif self.life < CLOSING:
                self._reject(400, f"malformed request: {exc}")
            return
        cur = self.cur
        if cur is not None and cur.facts is None:
            # httptools gathers a header line whole: bound a head that never ends.
            settings = self.state.settings
            if self._head_bytes > settings.max_request_line + settings.max_header_bytes + 4096:
                self._reject(431, f"request head exceeds {settings.max_header_bytes} bytes")
        elif cur is None:
            self._head_bytes = 0

    def eof_received(self) -> bool:
        # HTTP clients do not half-close to wait for an answer: EOF means the client is gone,
        # and whatever it asked for (held or forwarding) is cancelled.
        self.eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.life = CLOSED
        self.deadline.cancel()
        self.state.connections.discard(self)
        queue = list(self.queue)
        self.queue.clear()
        for ex in queue:
            ex.client_gone()
        if self.tunnel is not None and self.tunnel not in queue:
            self.tunnel.client_gone()
        self.tunnel = None

    def pause_writing(self) -> None:
        self.write_paused = True
        ex = self.tunnel or (self.queue[0] if self.queue else None)
        if ex is not None and ex.upstream is not None and ex.upstream.transport is not None:
            ex.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        ex = self.tunnel or (self.queue[0] if self.queue else None)
        if ex is not None and ex.upstream is not None and ex.upstream.transport is not None:
            ex.upstream.transport.resume_reading()

    # -- httptools callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._resuming is not None:
            self.cur = self._resuming  # the stand-in head of a body read again
            return
        if self.life >= CLOSING:
            raise _Reject
        self.cur = Exchange(self, self.state)
        if not self.queue:
            self.deadline.arm(self.state.settings.header_read_timeout)

    def on_url(self, url: bytes) -> None:
        ex = self.cur
        assert ex is not None
        if self._resuming is not None:
            return
        ex.url += url
        limit = self.state.settings.max_request_line
        if len(ex.url) > limit:
            self._rejection = (414, f"request target longer than {limit} bytes")
            raise _Reject

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.cur
        assert ex is not None
        if ex.facts is not None:
            return  # a trailer field of a chunked body: not forwarded
        ex.headers.append((name, value))
        ex.header_bytes += len(name) + len(value) + 4
        settings = self.state.settings
        if ex.header_bytes > settings.max_header_bytes:
            self._rejection = (
                431,
                f"request header fields exceed {settings.max_header_bytes} bytes",
            )
            raise _Reject
        if len(ex.headers) > settings.max_headers:
            self._rejection = (431, f"more than {settings.max_headers} request header fields")
            raise _Reject

    def on_headers_complete(self) -> None:
        ex = self.cur
        assert ex is not None
        if self._resuming is not None:
            self._resuming = None  # the body that follows is ex's
            return
        parser = self.parser
        ex.start = self.state.loop.time()
        ex.method = parser.get_method()
        version = parser.get_http_version()
        ex.http11 = version == "1.1"
        ex.keep_alive = parser.should_keep_alive()
        ex.upgrade = bool(parser.should_upgrade())
        facts = scan(ex.headers)
        ex.facts = facts
        self._head_bytes = 0
        refusal = request_refusal(facts, version)
        if refusal is not None:
            self._rejection = refusal
            raise _Reject
        if ex.method == b"CONNECT":
            self._rejection = (405, "CONNECT is not supported by this reverse proxy")
            raise _Reject
        if facts.chunked:
            ex.body_framing = "chunked"
        elif facts.content_length is not None and facts.content_length != b"0":
            ex.body_framing = "length"
        else:
            ex.body_done = True
        if ex.upgrade and not self.queue and facts.upgrade is not None:
            h2_settings = _h2c_offer(facts, ex)
            if h2_settings is not None:
                # RFC 7540 section 3.2: this request becomes stream 1 of an HTTP/2 connection.
                self._h2c = (ex, h2_settings)
                return
        if ex.upgrade and not ex.body_done:
            # httptools takes the body of a request offering an upgrade (`Upgrade: h2c` on a
            # POST) for bytes of the new protocol. A hop may ignore an Upgrade offer (RFC 9110
            # section 7.8), and this one does when a body comes with it: the request goes on
            # without the offer, and its body is read as a body (_read_body_again).
            ex.upgrade = False
            self._body_after_upgrade = ex
        if not self.queue:
            self.deadline.disarm()
        self.queue.append(ex)
        if len(self.queue) == 1:
            self._advance()
        else:
            self.pause_reading_for(Pause.QUEUE, True)

    def on_body(self, body: bytes) -> None:
        ex = self.cur
        if ex is not None:
            ex.feed_body(body)

    def on_message_complete(self) -> None:
        ex = self.cur
        self.cur = None
        if ex is not None and ex is self._body_after_upgrade:
            return  # httptools skipped the body; it is read again, and ends, later
        if ex is not None and not ex.body_done:
            ex.body_end()

    # -- used by exchanges ------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(data)
        elif self.life is not CLOSED and self.transport is not None:
            self.transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        out = self._out
        if out is not None:
            out += parts
        elif self.life is not CLOSED and self.transport is not None:
            self.transport.writelines(parts)

    # -- the response, framed as HTTP/1.1 (what the exchange sends through ClientSide) -----
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
        self.write(
            response_head(
                status,
                reason,
                headers,
                facts,
                framing=framing,
                keep_alive=keep_alive,
                cold_start=cold_start,
                via=via,
            )
        )

    def send_body(self, data: bytes, chunked: bool) -> None:
        if chunked:
            self.writelines(chunk(data))
        else:
            self.write(data)

    def send_end(self, chunked: bool, trailers: RawHeaders | None) -> None:
        # Response trailers are not forwarded to HTTP/1.1 clients (nor were they ever).
        if chunked:
            self.write(LAST_CHUNK)

    def send_page(
        self, page: Page, *, keep_alive: bool, cold_start: bool | None, head_only: bool
    ) -> None:
        self.write(render(page, keep_alive=keep_alive, cold_start=cold_start, head_only=head_only))

    def begin_batch(self) -> bool:
        """Collect writes until :meth:`end_batch`: a response head and a small body (parsed
        from one upstream read) leave in one send, not one per piece. False when nested."""
        if self._out is not None:
            return False
        self._out = []
        return True

    def end_batch(self) -> None:
        out = self._out
        self._out = None
        if not out or self.life is CLOSED or self.transport is None:
            return
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            self.transport.writelines(out)

    def close(self) -> None:
        self.end_batch()
        transport = self.transport
        if transport is None:
            self._to(CLOSING)
            return
        if (
            self.life < LINGERING
            and not self.eof
            and self.tunnel is None
            and self.upgrading is None
            and transport.can_write_eof()
        ):
            # The client may still be sending: the rest of a refused request, or requests
            # pipelined after a "close". Closing with unread bytes makes the kernel send a
            # reset, which can destroy the answer before the client reads it. So: FIN, discard
            # what still arrives (bounded), close at the client's EOF (RFC 9112 section 9.6).
            self.life = LINGERING
            transport.write_eof()
            self.deadline.arm(LINGER_SECONDS)
            self.paused = 0
            if self.reading_paused:
                self.reading_paused = False
                transport.resume_reading()
            return
        self._to(CLOSING)
        transport.close()

    def abort(self) -> None:
        self._to(CLOSING)
        self._out = None
        if self.transport is not None:
            self.transport.abort()

    def pause_reading_for(self, reason: int, on: bool) -> None:
        paused = (self.paused | reason) if on else (self.paused & ~reason)
        self.paused = paused
        transport = self.transport
        if transport is None or self.life is CLOSED:
            return
        if paused and not self.reading_paused:
            self.reading_paused = True
            transport.pause_reading()
        elif not paused and self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()

    def start_tunnel(self, ex: Exchange) -> None:
        self.tunnel = ex
        self.upgrading = None
        self.deadline.cancel()
        up = ex.upstream
        if ex.tunnel_tail and up is not None:
            up.write(ex.tunnel_tail)
            ex.tunnel_tail = b""
        self.pause_reading_for(Pause.QUEUE | Pause.BUFFER, False)

    def exchange_done(self, ex: Exchange) -> None:
        queue = self.queue
        if queue and queue[0] is ex:
            queue.popleft()
        elif ex in queue:
            queue.remove(ex)
        if self.tunnel is ex:
            self.tunnel = None
        if self.life is CLOSED:
            return
        if not ex.keep_alive or (self.eof and not queue) or self.upgrading is ex:
            self.close()
            return
        if queue:
            self.pause_reading_for(Pause.QUEUE, len(queue) > 1)
            self._advance()
            return
        self.pause_reading_for(Pause.QUEUE, False)
        if self.state.draining:
            self.close()
        elif self.cur is None:
            self.deadline.arm(self.state.settings.keepalive_timeout)

    def drain(self) -> None:
        """Stop taking requests on this connection: close now if idle, else after the answer."""
        if not self.queue and self.cur is None and self.tunnel is None:
            self.close()

    # -- internals --------------------------------------------------------------------------
    def _sniff(self, data: bytes) -> bytes:
        """The first bytes: an HTTP/2 connection preface (prior knowledge) hands the
        connection over to HTTP/2; anything else is read as HTTP/1.1."""
        early = self._early + data
        if is_preface_start(early):
            if len(early) < 24:
                self._early = early  # wait for the rest of the preface
                return b""
            self._to_h2(early, None)
            return b""
        self._fresh = False
        self._early = b""
        return early

    def _to_h2(self, rest: bytes, upgrade: tuple[Exchange, bytes] | None) -> None:
        """From now on this transport speaks HTTP/2, served by an H2ClientConnection."""
        transport = self.transport
        self._fresh = False
        self._h2c = None
        self.life = CLOSED
        self.deadline.cancel()
        self.state.connections.discard(self)
        if transport is None:
            return
        h2c = H2ClientConnection(self.state, self.client_ip, self.proto)
        transport.set_protocol(h2c)
        if self.reading_paused:
            self.reading_paused = False
            transport.resume_reading()
        h2c.take_over(transport, upgrade)
        if rest:
            h2c.data_received(rest)

    def _advance(self) -> None:
        if self._advancing:
            return
        self._advancing = True
        try:
            while self.queue and self.life < CLOSING:
                ex = self.queue[0]
                if ex.phase is not QUEUED:
                    break
                ex.begin()
        finally:
            self._advancing = False

    def _read_body_again(self, ex: Exchange, rest: bytes) -> None:
        """Read ``ex``'s body, which httptools skipped, with a fresh parser: a stand-in head
        with the same framing, whose callbacks go to ``ex``, then the bytes as they come. The
        requests after it are parsed by that same parser, as usual."""
        self._body_after_upgrade = None
        facts = ex.facts
        assert facts is not None
        if ex.body_framing == "chunked":
            framing = b"Transfer-Encoding: chunked\r\n"
        else:
            framing = b"Content-Length: " + (facts.content_length or b"0") + b"\r\n"
        self.parser = httptools.HttpRequestParser(self)
        self._resuming = ex
        self.parser.feed_data(b"POST / HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n")
        if rest:
            self.data_received(rest)

    def _reject(self, status: int, message: str) -> None:
        """A request that cannot be parsed or is too large: answer in order, then close."""
        self._to(REFUSING)
        self._rejection = None
        self.pause_reading_for(Pause.DEAD, True)
        cur = self.cur
        self.cur = None
        if cur is not None and cur in self.queue:
            # Its body turned out malformed after its head was taken (a bad chunk).
            if cur.final:
                self.abort()  # its response has begun: only a broken connection is left
                return
            if self.queue[0] is cur:
                cur.refuse(status, message)  # its upstream never saw the end of the body
                return
            self.queue.remove(cur)  # not begun: nothing of it went anywhere; answer in order
        rejection = Rejection(self, self.state, status, message)
        if not self.queue:
            self.deadline.cancel()
            rejection.begin()
        else:
            # Answer after the requests before it; the earlier ones keep their order.
            self.queue.append(rejection)

    def _on_timeout(self) -> None:
        if self.tunnel is not None or self.life is CLOSED:
            return
        if self.life is LINGERING:
            if self.transport is not None:
                self.transport.close()
            return
        if self.queue:
            return  # an exchange is running; its own timeouts apply
        if self.cur is not None:
            timeout = self.state.settings.header_read_timeout
            self._to(REFUSING)
            self.write(
                simple_response(
                    408, f"request header not received within {timeout:g} s\n", keep_alive=False
                )
            )
        self.close()

    def _to(self, life: Life) -> None:
        """Move forward to ``life`` (never back)."""
        if life > self.life:
            self.life = life


def _h2c_offer(facts: HeadFacts, ex: Exchange) -> bytes | None:
    """The HTTP2-Settings value (padded base64url) of an ``Upgrade: h2c`` offer this hop
    takes, else None: one
    HTTP2-Settings field of valid base64url, and no body (an offer with a body is ignored,
    see on_headers_complete)."""
    assert facts.upgrade is not None
    if facts.upgrade.lower() != b"h2c" or not ex.body_done:
        return None
    values = [v for n, v in ex.headers if n.lower() == b"http2-settings"]
    if len(values) != 1:
        return None
    value = values[0].strip()
    try:
        decoded = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(decoded) % 6:
        return None
    return value + b"=" * (-len(value) % 4)
