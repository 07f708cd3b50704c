"""One request and its response, as a state machine driven by callbacks (no task per request).

Phases (:class:`Phase`)::

    QUEUED ──begin──▶ CONNECTING ──connected──▶ SENDING ──response end──▶ DONE
      │  ▲               │  ▲                     │ 101
      │  └──refused──────┘  │                     ▼
      ▼                     │                   TUNNEL ──either side closes──▶ DONE
    HELD ──released─────────┘ (or straight to SENDING on a pooled connection)
      └──deadline: failover ▶ CONNECTING, placeholder or error ▶ DONE

Any phase may end in DONE early: an answer of our own (404, 502, 503, 504), a malformed body,
the request timeout, or the client going away. The decisions themselves (retry, hold or fail
after a refused connection; failover, placeholder or fail at the deadline; the request target)
are the pure functions of :mod:`.policy`; this module only acts on them.

What an exchange needs from the shared proxy state and from its client connection is written
down as two protocols (:class:`Proxy`, :class:`ClientSide`); it implements
:class:`~.upstream.ResponseSink` for its backend connection. So the modules depend one way:
connection → exchange → upstream, and state → exchange.

This module is longer than the others on purpose: the exchange is one state machine, and its
transitions (request side, response side, cold start, ending) are meant to be read together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from enum import Enum
from time import perf_counter
from typing import Any, Protocol

from wakeway.gateway.request import Request
from wakeway.model.httpso import HTTPScaledObject
from wakeway.observe import tracing

from .headers import Framing, HeadFacts, RawHeaders, body_framing, request_head, scan
from .metrics import Metrics
from .pages import Page, placeholder_page
from .policy import (
    Admission,
    AtDeadline,
    Failure,
    Next,
    Refused,
    TargetPolicy,
    after_connect_failure,
    at_deadline,
    failure_status,
    parse_request_target,
)
from .router import Router
from .settings import InterceptorSettings
from .statics import Verdict, decide
from .upstream import Address, Pool, UpstreamConnection, format_address


class Phase(Enum):
    QUEUED = "queued"  # parsed, waiting for the requests before it (or for the gate again)
    HELD = "held"  # at the cold-start gate
    CONNECTING = "connecting"  # a new backend connection is being opened
    SENDING = "sending"  # request going out and/or response coming back
    TUNNEL = "tunnel"  # after 101 Switching Protocols: bytes both ways
    DONE = "done"


QUEUED, HELD, CONNECTING, SENDING, TUNNEL, DONE = Phase  # the hot path compares with ``is``


class Pause:
    """Why a client connection stopped reading (bits of one int); it reads again when no
    reason is left. Plain ints, not an IntFlag: flag arithmetic on enum members costs
    microseconds, and this runs on every request."""

    UPSTREAM = 1  # the backend connection's write buffer is full
    BUFFER = 2  # a held request's buffered body reached max_buffered_body
    QUEUE = 4  # pipelined requests wait behind the one being answered
    DEAD = 8  # a request was refused: nothing more is parsed


LAST_CHUNK = b"0\r\n\r\n"


def chunk(data: bytes) -> list[bytes]:
    """``data`` as one chunk of a chunked body (RFC 9112 section 7.1)."""
    return [b"%x\r\n" % len(data), data, b"\r\n"]


def final_chunk(trailers: RawHeaders | None) -> bytes:
    """The end of a chunked body, with its trailer fields (RFC 9112 section 7.1.2)."""
    if not trailers:
        return LAST_CHUNK
    lines = [b"0\r\n"]
    for name, value in trailers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


log = logging.getLogger("wakeway.interceptor")


class Proxy(Protocol):
    """What an exchange uses of the state shared by every connection (``ProxyState``)."""

    settings: InterceptorSettings
    loop: asyncio.AbstractEventLoop
    router: Router | None
    pool: Pool
    draining: bool
    metrics: Metrics

    def policy_of(self, target: HTTPScaledObject) -> TargetPolicy: ...
    def pick(self, key: str) -> Address | None: ...
    def refused(self, addr: Address) -> None: ...
    def arrive(self, ex: Exchange) -> None: ...
    def done(self, ex: Exchange) -> None: ...
    def admit(self, ex: Exchange) -> Admission: ...
    def held(self, ex: Exchange) -> None: ...
    def cancel_hold(self, ex: Exchange) -> None: ...


class ClientSide(Protocol):
    """What an exchange uses of its client: an HTTP/1.1 connection (``ClientConnection``) or
    one HTTP/2 stream (``h2stream.H2Stream``). The response goes out as events (head,
    body, end with trailers, or a page of our own); each client kind frames them itself."""

    client_ip: bytes
    proto: bytes  # b"https" over TLS, else b"http"
    write_paused: bool

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
    ) -> None: ...
    def send_body(self, data: bytes, chunked: bool) -> None: ...
    def send_end(self, chunked: bool, trailers: RawHeaders | None) -> None: ...
    def send_page(
        self, page: Page, *, keep_alive: bool, cold_start: bool | None, head_only: bool
    ) -> None: ...
    def write(self, data: bytes) -> None:
        """Tunnel bytes (after 101 Switching Protocols; HTTP/1.1 only)."""
        ...

    def begin_batch(self) -> bool: ...
    def end_batch(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def pause_reading_for(self, reason: int, on: bool) -> None: ...
    def start_tunnel(self, ex: Exchange) -> None: ...
    def exchange_done(self, ex: Exchange) -> None: ...


class LazyHeaders(Mapping[str, str]):
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
        "began",
        "body",
        "body_done",
        "body_framing",
        "buffered",
        "cold",
        "conn",
        "connect_task",
        "exempt",
        "facts",
        "final",
        "header_bytes",
        "headers",
        "held_since",
        "hold_deadline",
        "http11",
        "keep_alive",
        "method",
        "own_timeout",
        "phase",
        "policy",
        "proxy",
        "req_timer",
        "req_trailers",
        "resp_framing",
        "sent",
        "start",
        "status",
        "target",
        "tkey",
        "trace",
        "tunnel_tail",
        "up_framing",
        "up_reusable",
        "upgrade",
        "upstream",
        "url",
    )

    def __init__(self, conn: ClientSide, proxy: Proxy) -> None:
        self.conn = conn
        self.proxy = proxy
        self.began = perf_counter()  # for the metrics: loop.time() may count whole ms
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
        self.policy: TargetPolicy | None = None
        self.tkey = ""
        self.phase = QUEUED
        self.upstream: UpstreamConnection | None = None
        self.addr: Address | None = None
        self.backend_key = ""
        self.attempts = 0
        self.connect_task: asyncio.Task[UpstreamConnection] | None = None
        # A wake exclusion or maintenance matched: it counts as no activity and never waits.
        self.exempt: Verdict | None = None
        self.cold = False
        self.start = 0.0
        self.held_since = 0.0
        self.hold_deadline = 0.0  # set by the first hold; a request held again keeps it
        self.status = 0
        self.sent = 0  # response body bytes (the access log's)
        self.trace: tracing.RequestTrace | None = None  # while tracing is on
        self.final = False
        self.up_framing: Framing = "none"
        self.resp_framing: Framing = "none"
        self.up_reusable = False
        self.tunnel_tail = b""
        self.req_timer: asyncio.TimerHandle | None = None
        self.req_trailers: RawHeaders | None = None  # from an HTTP/2 client's body
        self.own_timeout: float | None = None  # the client's own deadline (grpc-timeout)

    # -- start ------------------------------------------------------------------------------
    def begin(self) -> None:
        """This exchange is now first in its connection's queue: route, then forward or hold."""
        proxy = self.proxy
        facts = self.facts
        assert facts is not None
        self.phase = SENDING  # provisional; every branch below sets the real phase
        router = proxy.router
        if router is None:
            self.respond(503, "no routing table loaded yet\n", extra=(("Retry-After", "1"),))
            return
        if tracing.tracer is None:
            self._route(router, facts)
        else:
            self._begin_traced(router, facts)

    def _begin_traced(self, router: Router, facts: HeadFacts) -> None:
        began = perf_counter()
        trace = self.trace = tracing.RequestTrace(
            self.method, self.url, self.headers, began - self.began
        )
        self._route(router, facts)
        trace.routed(self.tkey, perf_counter() - began)

    def _route(self, router: Router, facts: HeadFacts) -> None:
        proxy = self.proxy
        where = parse_request_target(self.url, facts.host)
        req = Request(
            self.method.decode("latin-1"),
            where.host,
            where.path,
            where.query,
            LazyHeaders(self.headers),
        )
        target = router.lookup(req)
        if target is None:
            self.respond(404, f"no route for host {req.host!r} and path {where.path!r}\n")
            return
        policy = proxy.policy_of(target)
        addr = proxy.pick(policy.backend_key)
        if policy.statics is not None and self._answered_statically(req, policy, addr):
            return
        self.target = target
        self.policy = policy
        self.tkey = policy.key
        proxy.arrive(self)
        timeout = self.time_limit()
        if timeout:
            self.req_timer = proxy.loop.call_later(timeout, self._on_request_timeout)
        self.backend_key = policy.backend_key
        if addr is not None:
            self.connect(addr)
        else:
            self._hold()

    def connect(self, addr: Address) -> None:
        proxy = self.proxy
        self.addr = addr
        trace = self.trace
        if trace is not None and trace.forward is None:
            self.headers = trace.forwarding(addr, self.headers)
        up = proxy.pool.acquire(addr)
        if up is not None:
            self.attach(up)
            return
        self.phase = CONNECTING
        policy = self.policy
        assert policy is not None
        task = proxy.loop.create_task(proxy.pool.open(addr, policy.connect_timeout))
        self.connect_task = task
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[UpstreamConnection]) -> None:
        self.connect_task = None
        if task.cancelled():
            if self.phase is CONNECTING:
                self.respond(502, f"connecting to {self._where()} was cancelled\n")
            return
        exc = task.exception()
        if self.phase is not CONNECTING:
            if exc is None:
                self.proxy.pool.release(task.result())  # unused and fresh: keep it
            return
        if exc is None:
            self.attach(task.result())
            return
        if isinstance(exc, TimeoutError):
            failure = Failure.CONNECT_TIMEOUT
        elif isinstance(exc, ConnectionRefusedError):
            failure = Failure.REFUSED
        else:
            failure = Failure.CONNECT_ERROR
        self._connect_failed(failure, exc)

    def _connect_failed(self, failure: Failure, exc: BaseException) -> None:
        """Nothing was sent: another ready endpoint, back to the cold-start gate when the
        refusing one was the last, or an error (see :func:`.policy.after_connect_failure`)."""
        proxy = self.proxy
        policy = self.policy
        assert policy is not None
        assert self.addr is not None
        addr: Address | None = None
        if failure is Failure.REFUSED:
            proxy.refused(self.addr)
            self.attempts += 1
            if self.attempts < proxy.settings.refused_endpoint_attempts:
                addr = proxy.pick(self.backend_key)
        action = after_connect_failure(
            failure,
            attempts=self.attempts,
            limit=proxy.settings.refused_endpoint_attempts,
            endpoint_available=addr is not None,
            primary_backend=self.backend_key == policy.backend_key,
        )
        if action is Next.RETRY:
            assert addr is not None
            self.connect(addr)
        elif action is Next.HOLD and self.exempt is not None:
            self._answer_static(self.exempt)  # never held: a held request wakes the target
        elif action is Next.HOLD:
            self.phase = QUEUED
            self._hold()
        elif failure is Failure.CONNECT_TIMEOUT:
            self.respond(
                failure_status(failure),
                f"connecting to {self._where()} timed out after {policy.connect_timeout:g} s\n",
            )
        else:
            self.respond(
                failure_status(failure), f"could not connect to {self._where()}: {_describe(exc)}\n"
            )

    def attach(self, up: UpstreamConnection) -> None:
        """Send the head (and whatever body arrived so far) on ``up``."""
        conn = self.conn
        facts = self.facts
        assert facts is not None
        self.upstream = up
        up.sink = self
        self.phase = SENDING
        head = request_head(
            self.method,
            self.url,
            self.headers,
            facts,
            client_ip=conn.client_ip,
            proto=conn.proto,
            framing=self.body_framing,
            upgrade=self.upgrade,
            via=self.proxy.settings.via,
        )
        body = self.body
        # A chunked body that already ended still owes its last chunk, even when it is empty.
        last_chunk = self.body_framing == "chunked" and self.body_done
        if not body and not self.tunnel_tail and not last_chunk:
            up.write(head)
        else:
            parts = [head]
            if self.body_framing == "chunked":
                for data in body:
                    parts += chunk(data)
                if self.body_done:
                    parts.append(final_chunk(self.req_trailers))
            else:
                parts += body
            if self.tunnel_tail:
                parts.append(self.tunnel_tail)
                self.tunnel_tail = b""
            self.body = []
            self.buffered = 0
            up.write(b"".join(parts))
            conn.pause_reading_for(Pause.BUFFER, False)
        if conn.write_paused and up.transport is not None:
            up.transport.pause_reading()
        if self.body_done:
            self._arm_response_timer(up)

    def _arm_response_timer(self, up: UpstreamConnection) -> None:
        policy = self.policy
        assert policy is not None
        up.deadline.arm(policy.response_header_timeout)

    # -- request body -----------------------------------------------------------------------
    def feed_body(self, data: bytes) -> None:
        phase = self.phase
        up = self.upstream
        if phase is SENDING and up is not None:
            if self.body_framing == "chunked":
                up.writelines(chunk(data))
            else:
                up.write(data)
        elif phase is QUEUED or phase is HELD or phase is CONNECTING:
            self.body.append(data)
            self.buffered += len(data)
            if self.buffered >= self.proxy.settings.max_buffered_body:
                self.conn.pause_reading_for(Pause.BUFFER, True)
        # after the response (an early answer), the rest of the body is dropped

    def body_end(self, trailers: RawHeaders | None = None) -> None:
        """The request body ended (``trailers``: its trailer fields, from an HTTP/2 client;
        they reach the backend when the body goes there chunked)."""
        self.body_done = True
        self.req_trailers = trailers
        up = self.upstream
        if self.phase is SENDING and up is not None:
            if self.body_framing == "chunked":
                up.write(final_chunk(trailers))
            if not self.final:
                self._arm_response_timer(up)

    # -- response (the upstream connection's sink) ------------------------------------------
    def relay(self, data: bytes) -> None:
        """Tunnel bytes from the backend to the client."""
        self.conn.write(data)

    def begin_batch(self) -> bool:
        return self.conn.begin_batch()

    def end_batch(self) -> None:
        self.conn.end_batch()

    def upstream_paused(self, on: bool) -> None:
        """The backend connection's write buffer filled (or drained): stop (resume) reading
        the client's body."""
        self.conn.pause_reading_for(Pause.UPSTREAM, on)

    def on_response_head(
        self, up: UpstreamConnection, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bool:
        """Relay the head; true when the response has no body although the parser expects one."""
        if self.phase is not SENDING:
            return False
        conn = self.conn
        facts = scan(headers)
        via = self.proxy.settings.via
        if status < 200 and status != 101:
            # Interim (100 Continue, 103 Early Hints): relay to HTTP/1.1 clients, keep waiting.
            if self.http11:
                conn.send_head(
                    status,
                    reason,
                    headers,
                    facts,
                    framing="none",
                    keep_alive=True,
                    cold_start=None,
                    via=via,
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
            conn.send_head(
                101,
                reason,
                headers,
                facts,
                framing="none",
                keep_alive=True,
                cold_start=cold,
                via=via,
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
            and not self.proxy.draining
        )
        self.keep_alive = keep
        self.up_framing = up_framing
        self.resp_framing = framing
        self.up_reusable = up_framing != "close" and b"close" not in facts.connection
        conn.send_head(
            status,
            reason,
            headers,
            facts,
            framing=framing,
            keep_alive=keep,
            cold_start=cold,
            via=via,
        )
        if self.method == b"HEAD":
            self.on_response_end(up)
            return True
        return False

    def on_response_body(self, data: bytes) -> None:
        if not data or self.phase is not SENDING:
            return
        self.sent += len(data)
        self.conn.send_body(data, self.resp_framing == "chunked")

    def on_response_end(self, up: UpstreamConnection) -> None:
        if self.phase is not SENDING or not self.final:
            return
        self.conn.send_end(self.resp_framing == "chunked", up.trailers)
        self.upstream = None
        if self.up_reusable and self.body_done:
            self.proxy.pool.release(up)
        else:
            up.sink = None
            up.close()
        self.finish()

    def on_upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None:
        """The upstream connection closed while this exchange used it."""
        self.upstream = None
        phase = self.phase
        if phase is TUNNEL:
            self.conn.close()
            self.finish()
            return
        if phase is not SENDING:
            return
        if self.final:
            if self.up_framing == "close" and exc is None:
                self.conn.send_end(self.resp_framing == "chunked", None)
                self.finish()
            else:
                # Truncated mid-body: the client must see a broken response, not a short one.
                self.keep_alive = False
                self.conn.abort()
                self.finish()
            return
        # Never sent again (policy.may_resend): the backend may have received the request.
        why = f": {_describe(exc)}" if exc else ""
        self.respond(
            failure_status(Failure.LOST),
            f"{self._where()} closed the connection before responding{why}\n",
        )

    def on_upstream_failed(self, message: str) -> None:
        self.upstream = None
        if self.phase is not SENDING:
            return
        if self.final:
            self.keep_alive = False
            self.conn.abort()
            self.finish()
        else:
            self.respond(failure_status(Failure.INVALID_RESPONSE), message + "\n")

    def on_response_header_timeout(self, up: UpstreamConnection) -> None:
        self._drop_upstream(up)
        policy = self.policy
        assert policy is not None
        timeout = policy.response_header_timeout
        self.respond(504, f"{self._where()} sent no response header within {timeout:g} s\n")

    def _on_request_timeout(self) -> None:
        self.req_timer = None
        if self.phase is DONE:
            return
        policy = self.policy
        assert policy is not None
        timeout = self.time_limit()
        assert timeout is not None
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
        self.respond(
            504,
            f"{self.tkey}: the request did not complete within {timeout:g} s\n",
        )

    # -- cold start -------------------------------------------------------------------------
    def _hold(self) -> None:
        """Ask the cold-start gate to hold this exchange until its backend has an endpoint."""
        proxy = self.proxy
        admission = proxy.admit(self)
        if isinstance(admission, Refused):
            retry = (("Retry-After", str(admission.retry_after)),)
            self.respond(admission.status, admission.message + "\n", extra=retry)
            return
        self.phase = HELD
        self.cold = True
        self.held_since = proxy.loop.time()
        self.hold_deadline = admission.deadline
        trace = self.trace
        if trace is not None:
            trace.held(self.backend_key, first=not proxy.metrics.counters.held.get(self.tkey))
        proxy.held(self)
        if log.isEnabledFor(logging.DEBUG):
            left = admission.deadline - self.held_since
            log.debug("%s: holding %s for backend %s, at most %.1f s", *self._said(), left)

    def on_released(self) -> None:
        """The gate let this held exchange go: its backend has a ready endpoint now."""
        if self.phase is not HELD:
            return
        addr = self.proxy.pick(self.backend_key)
        if addr is None:
            # Every endpoint refused a connection a moment ago: wait for the next view.
            self.phase = QUEUED
            self._hold()
            return
        if log.isEnabledFor(logging.DEBUG):
            waited = self.proxy.loop.time() - self.held_since
            to = format_address(addr)
            log.debug("%s: released %s after %.3f s to %s", *self._said()[:2], waited, to)
        if self.trace is not None:
            self.trace.released("released")
        self.connect(addr)

    def _said(self) -> tuple[str, str, str]:
        """Target, ``METHOD path`` and backend, for a DEBUG line."""
        request = f"{self.method.decode('latin-1')} {self.url.decode('latin-1')}"
        return self.tkey, request, self.backend_key

    def on_expired(self) -> None:
        """The readiness deadline passed: failover, placeholder, or an error."""
        if self.phase is not HELD:
            return
        proxy = self.proxy
        policy = self.policy
        assert policy is not None
        log.debug("%s: a held request reached its deadline", self.tkey)
        if self.trace is not None:
            self.trace.released("expired")
        addr = None if policy.failover_key is None else proxy.pick(policy.failover_key)
        action = at_deadline(
            failover=policy.failover_key is not None,
            failover_endpoint=addr is not None,
            placeholder=policy.placeholder.enabled,
            refused_attempts=self.attempts,
        )
        if action is AtDeadline.FAILOVER:
            assert addr is not None
            assert policy.failover_key is not None
            self.backend_key = policy.failover_key
            self.connect(addr)
        elif action is AtDeadline.FAILOVER_UNAVAILABLE:
            self.respond(
                502,
                f"{self.tkey} did not become ready within {policy.hold_wait:g} s and its "
                f"failover backend {policy.failover_describe} has no ready endpoint\n",
            )
        elif action is AtDeadline.PLACEHOLDER:
            answer = placeholder_page(
                policy.placeholder, self.tkey, accept=LazyHeaders(self.headers).get("accept")
            )
            self.phase = SENDING
            self._send_page(answer, self._can_keep_alive())
        elif action is AtDeadline.REFUSING:
            self.respond(
                502,
                f"could not connect to {self._where()}: connection refused "
                f"({self.attempts} attempt(s), then no other ready endpoint)\n",
            )
        else:
            self.respond(504, f"{self.tkey} did not become ready within {policy.hold_wait:g} s\n")

    # -- wake exclusions and maintenance (see .statics) -------------------------------------
    def _answered_statically(
        self, req: Request, policy: TargetPolicy, addr: Address | None
    ) -> bool:
        """Answer at once without counting or waking (true), or go on the usual way: counted,
        or (a wake exclusion while the target is awake) forwarded without counting."""
        assert policy.statics is not None
        verdict = decide(policy.statics, req, ready=addr is not None)
        if verdict is None:
            return False
        self.exempt = verdict
        if verdict.forward:
            return False
        self.policy = policy
        self.tkey = policy.key
        self._answer_static(verdict)
        return True

    def _answer_static(self, verdict: Verdict) -> None:
        answer = verdict.answer
        self.exempt = Verdict(answer, forward=False)
        self.respond(
            answer.status, answer.body, extra=answer.extra, content_type=answer.content_type
        )

    # -- ending -----------------------------------------------------------------------------
    def respond(
        self,
        status: int,
        body: str,
        *,
        extra: tuple[tuple[str, str], ...] = (),
        close: bool = False,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        """Answer with a response of our own (errors, 404, 503, 504, static answers) and
        finish."""
        if self.phase is DONE:
            return
        if self.final:
            self.keep_alive = False
            self.conn.abort()
            self.finish()
            return
        self.final = True
        page = Page(status, body.encode(), content_type, extra)
        self._send_page(page, self._can_keep_alive() and not close)

    def _send_page(self, page: Page, keep: bool) -> None:
        """Send a response of our own (an answer or the placeholder) and finish."""
        self.keep_alive = keep
        self.status = page.status
        head_only = self.method == b"HEAD"
        if not head_only:
            self.sent = len(page.body)
        self.conn.send_page(
            page, keep_alive=keep, cold_start=self._cold_header(), head_only=head_only
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
        if self.phase is DONE:
            return
        self._ended()
        self.conn.exchange_done(self)

    def client_gone(self) -> None:
        """The client connection closed: drop whatever this exchange holds upstream."""
        if self.phase is DONE:
            return
        self._leave_gate()
        up = self.upstream
        if up is not None:
            if self.phase is TUNNEL:
                up.sink = None
                up.close()
            else:
                self._drop_upstream(up)
        if not self.final:
            self.status = 499
        self._ended()

    def _ended(self) -> None:
        """DONE: the request timer stops, and the exchange is recorded (metrics, trace,
        counts)."""
        self.phase = DONE
        if self.req_timer is not None:
            self.req_timer.cancel()
            self.req_timer = None
        self.proxy.metrics.finished(self)
        if self.trace is not None:
            self.trace.finished(self.status)
        self.proxy.done(self)

    def time_limit(self) -> float | None:
        """The request timeout: the target's, or the client's own deadline when sooner."""
        policy = self.policy
        limit = None if policy is None else policy.request_timeout
        own = self.own_timeout
        if own is not None and (limit is None or own < limit):
            return own
        return limit

    def deadline_passed(self) -> bool:
        """The client's own deadline is over (its call ends as DEADLINE_EXCEEDED)."""
        own = self.own_timeout
        return own is not None and self.proxy.loop.time() - self.start >= own - 0.005

    def _leave_gate(self) -> None:
        if self.phase is HELD:
            self.proxy.cancel_hold(self)

    def _drop_upstream(self, up: UpstreamConnection) -> None:
        self.upstream = None
        up.abort()

    def _can_keep_alive(self) -> bool:
        return self.keep_alive and self.body_done and not self.upgrade and not self.proxy.draining

    def _cold_header(self) -> bool | None:
        policy = self.policy
        if policy is None or not policy.cold_header:
            return None
        return self.cold

    def _where(self) -> str:
        addr = format_address(self.addr) if self.addr else "?"
        return f"{self.tkey} backend {addr}"


class Rejection(Exchange):
    """A queued error answer for a bad pipelined request, sent after the earlier answers."""

    __slots__ = ("_message", "_status")

    def __init__(self, conn: ClientSide, proxy: Proxy, status: int, message: str) -> None:
        super().__init__(conn, proxy)
        self._status = status
        self._message = message
        self.keep_alive = False
        self.body_done = True

    def begin(self) -> None:
        self.phase = SENDING
        self.start = self.proxy.loop.time()
        self.respond(self._status, self._message + "\n", close=True)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
