"""The client side of the proxy: one httptools request parser per connection, one exchange per
request, answered strictly in arrival order (pipelining-safe).

No task per request: parsing, routing, pooled forwarding and relaying are callbacks. A task runs
only to open a new upstream connection. Back-pressure is tied both ways: a full upstream write
buffer pauses reading from the client, a full client write buffer pauses reading from the
upstream.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import httptools

from wakeway.gateway.request import Request
from wakeway.model.httpso import HTTPScaledObject

from .headers import (
    Framing,
    HeadFacts,
    body_framing,
    request_head,
    request_refusal,
    response_head,
    scan,
)
from .pages import placeholder_response, simple_response
from .timers import Deadline
from .upstream import Address, UpstreamConnection, format_address

if TYPE_CHECKING:
    from .state import ProxyState

# Exchange phases.
QUEUED, HELD, CONNECTING, SENDING, TUNNEL, DONE = range(6)

# After refusing a request, how long and how much more the client may send before the close.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing; the connection answers and closes."""


class _LazyHeaders(Mapping[str, str]):
    """Request headers for routing, decoded only if a route asks for them."""

    __slots__ = ("_d", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._d: dict[str, str] | None = None

    def _dict(self) -> dict[str, str]:
        d = self._d
        if d is None:
            d = {}
            for name, value in self._raw:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                d[key] = f"{d[key]}, {text}" if key in d else text
            self._d = d
        return d

    def __getitem__(self, key: str) -> str:
        return self._dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def get(self, key: str, default: Any = None) -> Any:
        return self._dict().get(key, default)


class Exchange:
    """One request and its response, from parsed head to the last byte (or a tunnel)."""

    __slots__ = (
        "addr",
        "attempts",
        "backend_key",
        "body",
        "body_done",
        "body_framing",
        "buffered",
        "cold",
        "conn",
        "connect_task",
        "facts",
        "final",
        "header_bytes",
        "headers",
        "held_since",
        "hold_deadline",
        "http11",
        "keep_alive",
        "method",
        "phase",
        "req_timer",
        "resp_framing",
        "start",
        "state",
        "status",
        "target",
        "tkey",
        "tunnel_tail",
        "up_framing",
        "up_reusable",
        "upgrade",
        "upstream",
        "url",
    )

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.state = conn.state
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.method = b"GET"
        self.http11 = True
        self.keep_alive = True
        self.upgrade = False
        self.facts: HeadFacts | None = None
        self.body_framing: Framing = "none"
        self.body: list[bytes] = []
        self.buffered = 0
        self.body_done = False
        self.target: HTTPScaledObject | None = None
        self.tkey = ""
        self.phase = QUEUED
        self.upstream: UpstreamConnection | None = None
        self.addr: Address | None = None
        self.backend_key = ""
        self.attempts = 0
        self.connect_task: asyncio.Task[UpstreamConnection] | None = None
        self.cold = False
        self.start = 0.0
        self.held_since = 0.0
        self.hold_deadline = 0.0  # set by the first hold; a request held again keeps it
        self.status = 0
        self.final = False
        self.up_framing: Framing = "none"
        self.resp_framing: Framing = "none"
        self.up_reusable = False
        self.tunnel_tail = b""
        self.req_timer: asyncio.TimerHandle | None = None

    # -- start ------------------------------------------------------------------------------
    def begin(self) -> None:
        """This exchange is now first in its connection's queue: route, then forward or hold."""
        st = self.state
        facts = self.facts
        assert facts is not None
        self.phase = SENDING  # provisional; every branch below sets the real phase
        host = (facts.host or b"").decode("latin-1")
        url = self.url
        if url[:1] != b"/" and b"://" in url[:16]:
            # absolute-form: the authority in the target wins over Host (RFC 9112 3.2.2)
            rest = url.split(b"://", 1)[1]
            authority, slash, path_part = rest.partition(b"/")
            host = authority.decode("latin-1")
            url = slash + path_part if slash else b"/"
        raw_path, _, raw_query = url.partition(b"?")
        path = raw_path.decode("latin-1")
        router = st.router
        if router is None:
            self.respond(503, "no routing table loaded yet\n", extra=(("Retry-After", "1"),))
            return
        req = Request(
            self.method.decode("latin-1"),
            host,
            path,
            raw_query.decode("latin-1"),
            _LazyHeaders(self.headers),
        )
        target = router.lookup(req)
        if target is None:
            self.respond(404, f"no route for host {req.host!r} and path {path!r}\n")
            return
        self.target = target
        self.tkey = target.key
        st.arrive(self)
        request_timeout = target.timeouts.request or st.settings.request_timeout
        if request_timeout:
            self.req_timer = st.loop.call_later(request_timeout, self._on_request_timeout)
        self.backend_key = target.backend.key(target.namespace)
        addr = st.pick(self.backend_key)
        if addr is not None:
            self.connect(addr)
        else:
            st.hold(self)

    def connect(self, addr: Address) -> None:
        st = self.state
        self.addr = addr
        up = st.pool.acquire(addr)
        if up is not None:
            self.attach(up)
            return
        self.phase = CONNECTING
        target = self.target
        assert target is not None
        timeout = target.timeouts.connect or st.settings.connect_timeout
        task = st.loop.create_task(st.pool.open(addr, timeout))
        self.connect_task = task
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[UpstreamConnection]) -> None:
        self.connect_task = None
        if task.cancelled():
            if self.phase == CONNECTING:
                self.respond(502, f"connecting to {self._where()} was cancelled\n")
            return
        exc = task.exception()
        if self.phase != CONNECTING:
            if exc is None:
                self.state.pool.release(task.result())  # unused and fresh: keep it
            return
        if exc is None:
            self.attach(task.result())
        elif isinstance(exc, TimeoutError):
            target = self.target
            assert target is not None
            timeout = target.timeouts.connect or self.state.settings.connect_timeout
            self.respond(504, f"connecting to {self._where()} timed out after {timeout:g} s\n")
        elif isinstance(exc, ConnectionRefusedError) and self._try_elsewhere():
            return
        else:
            self.respond(502, f"could not connect to {self._where()}: {_describe(exc)}\n")

    def _try_elsewhere(self) -> bool:
        """After a refused connection (nothing was sent yet): another ready endpoint, or back
        to the cold-start gate when the refusing one was the last. False: give up (502)."""
        st = self.state
        target = self.target
        assert target is not None
        assert self.addr is not None
        st.refused(self.addr)
        self.attempts += 1
        if self.attempts >= st.settings.refused_endpoint_attempts:
            return False
        addr = st.pick(self.backend_key)
        if addr is not None:
            self.connect(addr)
            return True
        if self.backend_key != target.backend.key(target.namespace):
            return False  # the failover backend: no gate to wait at
        self.phase = QUEUED
        st.hold(self)
        return True

    def attach(self, up: UpstreamConnection) -> None:
        """Send the head (and whatever body arrived so far) on ``up``."""
        conn = self.conn
        st = self.state
        facts = self.facts
        assert facts is not None
        self.upstream = up
        up.exchange = self
        self.phase = SENDING
        head = request_head(
            self.method,
            self.url,
            self.headers,
            facts,
            client_ip=conn.client_ip,
            framing=self.body_framing,
            upgrade=self.upgrade,
            via=st.settings.via,
        )
        body = self.body
        # A chunked body that already ended still owes its last chunk, even when it is empty.
        last_chunk = self.body_framing == "chunked" and self.body_done
        if not body and not self.tunnel_tail and not last_chunk:
            up.write(head)
        else:
            parts = [head]
            if self.body_framing == "chunked":
                for chunk in body:
                    parts += (b"%x\r\n" % len(chunk), chunk, b"\r\n")
                if self.body_done:
                    parts.append(b"0\r\n\r\n")
            else:
                parts += body
            if self.tunnel_tail:
                parts.append(self.tunnel_tail)
                self.tunnel_tail = b""
            self.body = []
            self.buffered = 0
            up.write(b"".join(parts))
            conn.pause_reading_for(conn.PAUSE_BUFFER, False)
        if conn.write_paused and up.transport is not None:
            up.transport.pause_reading()
        if self.body_done:
            self._arm_response_timer(up)

    def _arm_response_timer(self, up: UpstreamConnection) -> None:
        target = self.target
        assert target is not None
        up.deadline.arm(
            target.timeouts.response_header or self.state.settings.response_header_timeout
        )

    # -- request body -----------------------------------------------------------------------
    def feed_body(self, data: bytes) -> None:
        phase = self.phase
        up = self.upstream
        if phase == SENDING and up is not None:
            if self.body_framing == "chunked":
                up.writelines([b"%x\r\n" % len(data), data, b"\r\n"])
            else:
                up.write(data)
        elif phase in (QUEUED, HELD, CONNECTING):
            self.body.append(data)
            self.buffered += len(data)
            if self.buffered >= self.state.settings.max_buffered_body:
                self.conn.pause_reading_for(self.conn.PAUSE_BUFFER, True)
        # after the response (an early answer), the rest of the body is dropped

    def body_end(self) -> None:
        self.body_done = True
        up = self.upstream
        if self.phase == SENDING and up is not None:
            if self.body_framing == "chunked":
                up.write(b"0\r\n\r\n")
            if not self.final:
                self._arm_response_timer(up)

    # -- response ---------------------------------------------------------------------------
    def on_response_head(
        self, up: UpstreamConnection, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bool:
        """Relay the head; true when the response has no body although the parser expects one."""
        if self.phase != SENDING:
            return False
        st = self.state
        conn = self.conn
        facts = scan(headers)
        via = st.settings.via
        if status < 200 and status != 101:
            # Interim (100 Continue, 103 Early Hints): relay to HTTP/1.1 clients, keep waiting.
            if self.http11:
                conn.write(
                    response_head(
                        status,
                        reason,
                        headers,
                        facts,
                        framing="none",
                        keep_alive=True,
                        cold_start=None,
                        via=via,
                    )
                )
            return False
        up.deadline.disarm()
        cold = self._cold_header()
        if status == 101:
            if not self.upgrade or facts.upgrade is None:
                self._drop_upstream(up)
                self.respond(502, f"{self._where()} switched protocols unasked\n")
                return False
            self.final = True
            self.status = 101
            self.phase = TUNNEL
            up.tunnel = True
            conn.write(
                response_head(
                    101,
                    reason,
                    headers,
                    facts,
                    framing="none",
                    keep_alive=True,
                    cold_start=cold,
                    via=via,
                )
            )
            conn.start_tunnel(self)
            return False
        self.final = True
        self.status = status
        up_framing, framing = body_framing(status, self.method, facts, client_http11=self.http11)
        keep = (
            self.keep_alive
            and self.body_done
            and framing != "close"
            and not self.upgrade
            and not st.draining
        )
        self.keep_alive = keep
        self.up_framing = up_framing
        self.resp_framing = framing
        self.up_reusable = up_framing != "close" and b"close" not in facts.connection
        conn.write(
            response_head(
                status,
                reason,
                headers,
                facts,
                framing=framing,
                keep_alive=keep,
                cold_start=cold,
                via=via,
            )
        )
        if self.method == b"HEAD":
            self.on_response_end(up)
            return True
        return False

    def on_response_body(self, data: bytes) -> None:
        if not data or self.phase != SENDING:
            return
        if self.resp_framing == "chunked":
            self.conn.writelines([b"%x\r\n" % len(data), data, b"\r\n"])
        else:
            self.conn.write(data)

    def on_response_end(self, up: UpstreamConnection) -> None:
        if self.phase != SENDING or not self.final:
            return
        if self.resp_framing == "chunked":
            self.conn.write(b"0\r\n\r\n")
        self.upstream = None
        if self.up_reusable and self.body_done:
            self.state.pool.release(up)
        else:
            up.exchange = None
            up.close()
        self.finish()

    def on_upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None:
        """The upstream connection closed while this exchange used it."""
        self.upstream = None
        phase = self.phase
        if phase == TUNNEL:
            self.conn.close()
            self.finish()
            return
        if phase != SENDING:
            return
        if self.final:
            if self.up_framing == "close" and exc is None:
                if self.resp_framing == "chunked":
                    self.conn.write(b"0\r\n\r\n")
                self.finish()
            else:
                # Truncated mid-body: the client must see a broken response, not a short one.
                self.keep_alive = False
                self.conn.abort()
                self.finish()
            return
        # Never retried here: the backend may have received the request and failed on it, and
        # sending it again would repeat that on the next instance. A pooled connection the
        # backend had closed is caught before anything is sent on it (Pool.acquire).
        why = f": {_describe(exc)}" if exc else ""
        self.respond(502, f"{self._where()} closed the connection before responding{why}\n")

    def on_upstream_failed(self, message: str) -> None:
        self.upstream = None
        if self.phase != SENDING:
            return
        if self.final:
            self.keep_alive = False
            self.conn.abort()
            self.finish()
        else:
            self.respond(502, message + "\n")

    def on_response_header_timeout(self, up: UpstreamConnection) -> None:
        self._drop_upstream(up)
        target = self.target
        assert target is not None
        timeout = target.timeouts.response_header or self.state.settings.response_header_timeout
        self.respond(504, f"{self._where()} sent no response header within {timeout:g} s\n")

    def _on_request_timeout(self) -> None:
        self.req_timer = None
        if self.phase == DONE:
            return
        target = self.target
        assert target is not None
        timeout = target.timeouts.request or self.state.settings.request_timeout
        if self.final:
            up = self.upstream
            if up is not None:
                self._drop_upstream(up)
            self.keep_alive = False
            self.conn.abort()
            self.finish()
            return
        self._leave_gate()
        if self.upstream is not None:
            self._drop_upstream(self.upstream)
        self.phase = SENDING
        self.respond(504, f"{self.tkey}: the request did not complete within {timeout:g} s\n")

    # -- cold start -------------------------------------------------------------------------
    def on_released(self) -> None:
        """The gate let this held exchange go: its backend has a ready endpoint now."""
        if self.phase != HELD:
            return
        target = self.target
        assert target is not None
        addr = self.state.pick(self.backend_key)
        if addr is None:
            # Every endpoint refused a connection a moment ago: wait for the next view.
            self.phase = QUEUED
            self.state.hold(self)
            return
        self.connect(addr)

    def on_expired(self) -> None:
        """The readiness deadline passed: failover, placeholder, or 504."""
        if self.phase != HELD:
            return
        st = self.state
        target = self.target
        assert target is not None
        failover = target.failover
        if failover is not None:
            self.backend_key = failover.backend.key(target.namespace)
            addr = st.pick(self.backend_key)
            if addr is not None:
                self.connect(addr)
                return
            self.respond(
                502,
                f"{self.tkey} did not become ready within {failover.timeout:g} s and its "
                f"failover backend {failover.backend.describe()} has no ready endpoint\n",
            )
            return
        placeholder = target.cold_start.placeholder
        if placeholder.enabled:
            keep = self._can_keep_alive()
            self.keep_alive = keep
            accept = _LazyHeaders(self.headers).get("accept")
            raw = placeholder_response(
                placeholder,
                self.tkey,
                accept=accept,
                keep_alive=keep,
                cold_start=self._cold_header(),
                head_only=self.method == b"HEAD",
            )
            self.status = placeholder.status
            self.phase = SENDING
            self.conn.write(raw)
            self.finish()
            return
        if self.attempts:
            # It was held again after its endpoint refused: a backend that refuses, not one
            # that is still starting.
            self.respond(
                502,
                f"could not connect to {self._where()}: connection refused "
                f"({self.attempts} attempt(s), then no other ready endpoint)\n",
            )
            return
        wait = target.timeouts.condition_wait or st.settings.condition_wait
        self.respond(504, f"{self.tkey} did not become ready within {wait:g} s\n")

    # -- ending -----------------------------------------------------------------------------
    def respond(
        self,
        status: int,
        body: str,
        *,
        extra: tuple[tuple[str, str], ...] = (),
        close: bool = False,
    ) -> None:
        """Answer with a response of our own (errors, 404, 503, 504) and finish."""
        if self.phase == DONE:
            return
        if self.final:
            self.keep_alive = False
            self.conn.abort()
            self.finish()
            return
        keep = self._can_keep_alive() and not close
        self.keep_alive = keep
        self.status = status
        self.final = True
        self.conn.write(
            simple_response(
                status,
                body,
                keep_alive=keep,
                extra=extra,
                cold_start=self._cold_header(),
                head_only=self.method == b"HEAD",
            )
        )
        self.finish()

    def refuse(self, status: int, message: str) -> None:
        """The rest of this request is malformed: drop what went upstream (the backend gets
        an incomplete request, never a complete one) and answer ``status``, then close."""
        self._leave_gate()
        up = self.upstream
        if up is not None:
            self._drop_upstream(up)
        self.phase = SENDING  # a connection still being opened is released by _connected
        self.respond(status, message + "\n", close=True)

    def finish(self) -> None:
        if self.phase == DONE:
            return
        self.phase = DONE
        if self.req_timer is not None:
            self.req_timer.cancel()
            self.req_timer = None
        self.state.done(self)
        self.conn.exchange_done(self)

    def client_gone(self) -> None:
        """The client connection closed: drop whatever this exchange holds upstream."""
        if self.phase == DONE:
            return
        self._leave_gate()
        up = self.upstream
        if up is not None:
            if self.phase == TUNNEL:
                up.exchange = None
                up.close()
            else:
                self._drop_upstream(up)
        if not self.final:
            self.status = 499
        self.phase = DONE
        if self.req_timer is not None:
            self.req_timer.cancel()
            self.req_timer = None
        self.state.done(self)

    def _leave_gate(self) -> None:
        if self.phase == HELD:
            self.state.cancel_hold(self)

    def _drop_upstream(self, up: UpstreamConnection) -> None:
        self.upstream = None
        up.abort()

    def _can_keep_alive(self) -> bool:
        return self.keep_alive and self.body_done and not self.upgrade and not self.state.draining

    def _cold_header(self) -> bool | None:
        target = self.target
        if target is None or not self.state.settings.cold_start_header:
            return None
        if not target.cold_start.response_header:
            return None
        return self.cold

    def _where(self) -> str:
        addr = format_address(self.addr) if self.addr else "?"
        return f"{self.tkey} backend {addr}"


class ClientConnection(asyncio.Protocol):
    """One client TCP connection; parses requests and runs their exchanges in order."""

    PAUSE_UPSTREAM = 1
    PAUSE_BUFFER = 2
    PAUSE_QUEUE = 4
    PAUSE_DEAD = 8

    __slots__ = (
        "_advancing",
        "_discarded",
        "_head_bytes",
        "_out",
        "_rejection",
        "client_ip",
        "closed",
        "closing",
        "cur",
        "dead",
        "deadline",
        "eof",
        "lingering",
        "parser",
        "paused",
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
        self.closed = False
        self.closing = False
        self.dead = False
        self.eof = False
        self.tunnel: Exchange | None = None
        self.upgrading: Exchange | None = None
        self.client_ip = b"unknown"
        self.deadline = Deadline(state.loop, self._on_timeout)
        self._advancing = False
        self.lingering = False
        self._discarded = 0
        self._out: list[bytes] | None = None
        self._head_bytes = 0
        self._rejection: tuple[int, str] | None = None

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

    def data_received(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            up = tunnel.upstream
            if up is not None:
                up.write(data)
            return
        upgrading = self.upgrading
        if upgrading is not None:
            if upgrading.upstream is not None and upgrading.phase == SENDING:
                upgrading.upstream.write(data)
            else:
                upgrading.tunnel_tail += data
            return
        if self.dead:
            if self.lingering:
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
            ex = self.queue[-1] if self.queue else None
            if ex is not None and ex.upgrade:
                self.upgrading = ex
                ex.tunnel_tail += data[offset:]
                if ex.upstream is not None and ex.tunnel_tail and ex.phase == SENDING:
                    ex.upstream.write(ex.tunnel_tail)
                    ex.tunnel_tail = b""
        except httptools.HttpParserError as exc:
            rejection = self._rejection
            if rejection is not None:
                self._reject(*rejection)
            elif not self.closing:
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
        self.closed = True
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
        if self.closing:
            raise _Reject
        self.cur = Exchange(self)
        if not self.queue:
            self.deadline.arm(self.state.settings.header_read_timeout)

    def on_url(self, url: bytes) -> None:
        ex = self.cur
        assert ex is not None
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
        if not self.queue:
            self.deadline.disarm()
        self.queue.append(ex)
        if len(self.queue) == 1:
            self._advance()
        else:
            self.pause_reading_for(self.PAUSE_QUEUE, True)

    def on_body(self, body: bytes) -> None:
        ex = self.cur
        if ex is not None:
            ex.feed_body(body)

    def on_message_complete(self) -> None:
        ex = self.cur
        self.cur = None
        if ex is not None and not ex.body_done:
            ex.body_end()

    # -- used by exchanges ------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(data)
        elif not self.closed and self.transport is not None:
            self.transport.write(data)

    def writelines(self, parts: list[bytes]) -> None:
        out = self._out
        if out is not None:
            out += parts
        elif not self.closed and self.transport is not None:
            self.transport.writelines(parts)

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
        if not out or self.closed or self.transport is None:
            return
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            self.transport.writelines(out)

    def close(self) -> None:
        self.closing = True
        self.end_batch()
        transport = self.transport
        if transport is None:
            return
        if (
            not self.lingering
            and not self.closed
            and not self.eof
            and self.tunnel is None
            and self.upgrading is None
            and transport.can_write_eof()
        ):
            # The client may still be sending: the rest of a refused request, or requests
            # pipelined after a "close". Closing with unread bytes makes the kernel send a
            # reset, which can destroy the answer before the client reads it. So: FIN, discard
            # what still arrives (bounded), close at the client's EOF (RFC 9112 section 9.6).
            self.lingering = True
            self.dead = True
            transport.write_eof()
            self.deadline.arm(LINGER_SECONDS)
            self.paused = 0
            if self.reading_paused:
                self.reading_paused = False
                transport.resume_reading()
            return
        transport.close()

    def abort(self) -> None:
        self.closing = True
        self._out = None
        if self.transport is not None:
            self.transport.abort()

    def pause_reading_for(self, reason: int, on: bool) -> None:
        paused = (self.paused | reason) if on else (self.paused & ~reason)
        self.paused = paused
        transport = self.transport
        if transport is None or self.closed:
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
        self.pause_reading_for(self.PAUSE_QUEUE | self.PAUSE_BUFFER, False)

    def exchange_done(self, ex: Exchange) -> None:
        queue = self.queue
        if queue and queue[0] is ex:
            queue.popleft()
        elif ex in queue:
            queue.remove(ex)
        if self.tunnel is ex:
            self.tunnel = None
        if self.closed:
            return
        if not ex.keep_alive or (self.eof and not queue) or self.upgrading is ex:
            self.close()
            return
        if queue:
            self.pause_reading_for(self.PAUSE_QUEUE, len(queue) > 1)
            self._advance()
            return
        self.pause_reading_for(self.PAUSE_QUEUE, False)
        if self.state.draining:
            self.close()
        elif self.cur is None:
            self.deadline.arm(self.state.settings.keepalive_timeout)

    def drain(self) -> None:
        """Stop taking requests on this connection: close now if idle, else after the answer."""
        if not self.queue and self.cur is None and self.tunnel is None:
            self.close()

    # -- internals --------------------------------------------------------------------------
    def _advance(self) -> None:
        if self._advancing:
            return
        self._advancing = True
        try:
            while self.queue and not self.closed and not self.closing:
                ex = self.queue[0]
                if ex.phase != QUEUED:
                    break
                ex.begin()
        finally:
            self._advancing = False

    def _reject(self, status: int, message: str) -> None:
        """A request that cannot be parsed or is too large: answer in order, then close."""
        self.dead = True
        self._rejection = None
        self.pause_reading_for(self.PAUSE_DEAD, True)
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
        rejection = _Rejection(self, status, message)
        if not self.queue:
            self.deadline.cancel()
            rejection.begin()
        else:
            # Answer after the requests before it; the earlier ones keep their order.
            self.queue.append(rejection)

    def _on_timeout(self) -> None:
        if self.tunnel is not None or self.closed:
            return
        if self.lingering:
            if self.transport is not None:
                self.transport.close()
            return
        if self.queue:
            return  # an exchange is running; its own timeouts apply
        if self.cur is not None:
            timeout = self.state.settings.header_read_timeout
            self.dead = True
            self.write(
                simple_response(
                    408, f"request header not received within {timeout:g} s\n", keep_alive=False
                )
            )
        self.close()


class _Rejection(Exchange):
    """A queued error answer for a bad pipelined request, sent after the earlier answers."""

    __slots__ = ("_message", "_status")

    def __init__(self, conn: ClientConnection, status: int, message: str) -> None:
        super().__init__(conn)
        self._status = status
        self._message = message
        self.keep_alive = False
        self.body_done = True

    def begin(self) -> None:
        self.phase = SENDING
        self.start = self.state.loop.time()
        self.respond(self._status, self._message + "\n", close=True)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
