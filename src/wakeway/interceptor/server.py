"""The interceptor's I/O shell: the proxy listener, the admin port, and the swap points.

Typical use (Kubernetes mode or local mode)::

    interceptor = Interceptor(settings)
    await interceptor.start()
    interceptor.set_router(table)                 # /readyz turns ready
    interceptor.set_endpoints({"ns/svc:8080": [("10.0.0.7", 8080)]})
    async for update in interceptor.subscribe():  # counts: snapshot, then changes
        ...
    await interceptor.drain_and_stop()

Wake signal: the count stream delivers a target's 0 -> 1 held transition at once (``wake`` is
true on that item), and :meth:`Interceptor.on_cold` registers a synchronous callback for the same
moment. Either is enough to start a workload; neither polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Collection, Mapping, Sequence

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from .admin import build_admin_app
from .connection import ClientConnection
from .counts import TargetCounts
from .router import Router
from .settings import InterceptorSettings, worker_count
from .state import ColdCallback, ProxyState
from .stream import CountSubscription
from .tls import CertificateFiles, Terminator, stop
from .workers import WorkerGroup

log = logging.getLogger("wakeway.interceptor")

EndpointView = Mapping[str, Sequence[tuple[str, int]]]


class Interceptor:
    """Reverse proxy with a cold-start gate; one per process (one event loop).

    With ``workers`` above 1 the proxy listener is served by that many worker processes
    (:mod:`.workers`); this object then keeps the admin port and the count stream (the sum of
    theirs), and ships the routing table, the endpoint view and held-request answers to them.
    """

    def __init__(
        self,
        settings: InterceptorSettings | None = None,
        admin_routes: Callable[[web.Application], None] | None = None,
        *,
        listener: socket.socket | None = None,
        admin: bool = True,
    ) -> None:
        """``admin_routes`` adds routes of the caller's own to the admin app (local mode's
        control API) before it serves. A worker process passes its ``listener`` (a bound
        socket) and ``admin=False``."""
        self.settings = settings or InterceptorSettings()
        self._admin_routes = admin_routes
        self._listener = listener
        self._serve_admin = admin
        self._group: WorkerGroup | None = None
        self._state: ProxyState | None = None
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._router: Router | None = None
        self._endpoints: EndpointView = {}
        self._h2c: frozenset[str] = frozenset()
        self._starting: EndpointView = {}
        self._cold: list[ColdCallback] = []
        self._tls: Terminator | None = None
        self._tls_watch: asyncio.Task[None] | None = None
        self._proxy_port = 0
        self._admin_port = 0
        self._draining = False
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the proxy and admin listeners (port 0 picks a free port)."""
        n = worker_count(self.settings.workers)
        if n > 1 and self._listener is None:
            if self.settings.tls_certificates:  # a file that cannot be used: said here, once
                CertificateFiles(self.settings.tls_certificates).load()
            group = WorkerGroup(self.settings, n, self._cold)
            self._group = group
            group.set_router(self._router)
            group.set_endpoints(self._endpoints, self._h2c, self._starting)
            await group.start()
            self._proxy_port = group.port
        else:
            await self._start_proxy()
        if self._serve_admin:
            await self._start_admin()

    async def _start_proxy(self) -> None:
        loop = asyncio.get_running_loop()
        state = ProxyState(self.settings, loop, self._cold)
        state.set_router(self._router)
        state.set_endpoints(self._endpoints, self._h2c, self._starting)
        self._state = state
        s = self.settings
        files = CertificateFiles(s.tls_certificates) if s.tls_certificates else None
        if files is not None:
            self._tls = Terminator(files.load())
        elif s.tls_secrets:
            self._tls = Terminator(None)  # Kubernetes mode swaps the Secrets' in
        tls = None if self._tls is None else self._tls.context
        # A TLS handshake is bounded as a request head is.
        handshake = None if self._tls is None else s.header_read_timeout
        if self._listener is not None:
            self._server = await loop.create_server(
                lambda: ClientConnection(state),
                sock=self._listener,
                backlog=1024,
                ssl=tls,
                ssl_handshake_timeout=handshake,
            )
        else:
            self._server = await loop.create_server(
                lambda: ClientConnection(state),
                s.listen_host,
                s.listen_port,
                backlog=1024,
                reuse_address=True,
                ssl=tls,
                ssl_handshake_timeout=handshake,
            )
        if files is not None and self._tls is not None:
            self._tls_watch = loop.create_task(files.watch(self._tls, s.tls_reload_interval))
        sock = self._server.sockets[0]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._proxy_port = sock.getsockname()[1]

    async def _start_admin(self) -> None:
        s = self.settings
        app = build_admin_app(self)
        if self._admin_routes is not None:
            self._admin_routes(app)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        admin_sock = socket.create_server((s.admin_host, s.admin_port), reuse_port=False)
        self._admin_port = admin_sock.getsockname()[1]
        await web.SockSite(self._runner, admin_sock).start()
        log.info(
            "interceptor listening on %s:%d%s%s, admin on %s:%d",
            s.listen_host,
            self._proxy_port,
            "" if self._tls is None and not s.tls_certificates else " (TLS)",
            "" if self._group is None else f" with {self._group.n} worker processes",
            s.admin_host,
            self._admin_port,
        )

    async def drain_and_stop(self, drain_timeout: float | None = None) -> None:
        """Stop accepting, let in-flight and held requests finish (up to the drain timeout),
        then answer what is still held with 503, close every connection and the admin port."""
        if self._stopped:
            return
        self._draining = True
        limit = self.settings.drain_timeout if drain_timeout is None else drain_timeout
        if self._group is not None:
            await self._group.drain(limit)
            if self._runner is not None:
                await self._runner.cleanup()
            self._stopped = True
            return
        state = self._state
        if state is None:
            self._stopped = True
            return
        state.draining = True
        if self._server is not None:
            self._server.close()
        await stop(self._tls_watch)
        for conn in list(state.connections):
            conn.drain()
        try:
            await asyncio.wait_for(state.wait_idle(), limit)
        except TimeoutError:
            log.warning("drain timed out after %gs with %d requests in flight", limit, state.active)
        state.release_all_held("this interceptor is shutting down\n")
        for conn in list(state.connections):
            conn.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        state.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self._stopped = True

    # -- swap points ------------------------------------------------------------------------
    def set_router(self, router: Router) -> None:
        """Replace the routing table (one assignment; requests in progress keep their target)."""
        self._router = router
        if self._group is not None:
            self._group.set_router(router)
        if self._state is not None:
            self._state.set_router(router)

    def set_endpoints(
        self, view: EndpointView, h2c: Collection[str] = (), starting: EndpointView | None = None
    ) -> None:
        """Replace the whole ready-endpoint view, keyed by ``PortRef.key(namespace)``;
        ``h2c``: the keys of backends spoken to over HTTP/2 without TLS (their Service port's
        appProtocol says so), the others get HTTP/1.1; ``starting``: endpoints not ready yet,
        which early probes try (see :mod:`.probe`; None: none).

        Every held request whose backend now has an endpoint is released at once, in arrival
        order.
        """
        frozen = {k: tuple(v) for k, v in view.items()}
        self._endpoints = frozen
        self._h2c = frozenset(h2c)
        self._starting = {k: tuple(v) for k, v in (starting or {}).items() if v}
        if self._group is not None:
            self._group.set_endpoints(frozen, self._h2c, self._starting)
        if self._state is not None:
            self._state.set_endpoints(frozen, self._h2c, self._starting)

    def fail_held(self, target: str, status: int, reason: str) -> int:
        """Answer every request held for target key ``target`` ("ns/name") with ``status`` and
        ``reason`` as the body (e.g. 502 when its workload failed to start); returns how many
        (with workers: how many were held as of their last reports)."""
        if self._group is not None:
            return self._group.fail_held(target, status, reason)
        return self._require_state().fail_held(target, status, reason)

    # -- observation ------------------------------------------------------------------------
    def subscribe(self) -> CountSubscription:
        """The in-process count stream: first a snapshot, then coalesced changes."""
        if self._group is not None:
            return self._group.hub.subscribe()
        return self._require_state().hub.subscribe()

    def on_cold(self, callback: ColdCallback) -> Callable[[], None]:
        """Call ``callback(target)`` when a target's first request is held (0 -> 1 held).

        Runs synchronously on the event loop: it must not block. Returns a function that
        unregisters it.
        """
        self._cold.append(callback)  # the running state reads this same list

        def remove() -> None:
            if callback in self._cold:
                self._cold.remove(callback)

        return remove

    def counts(self) -> dict[str, TargetCounts]:
        """The current counts of every target seen so far."""
        if self._group is not None:
            return self._group.counts.snapshot()
        return self._require_state().counters.snapshot()

    def clock(self) -> float:
        """Now on the counters' clock, which their ``idle_since`` is on."""
        if self._group is not None:
            return self._group.counts.now()
        return self._require_state().counters.now()

    @property
    def ready(self) -> bool:
        if self._group is not None:
            return not self._draining and self._group.ready
        return self._router is not None and not self._draining and self._state is not None

    @property
    def workers(self) -> WorkerGroup | None:
        """The worker processes (None when this process serves the proxy listener itself)."""
        return self._group

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def proxy_port(self) -> int:
        return self._proxy_port

    @property
    def tls(self) -> Terminator | None:
        """The listener's TLS side (None without TLS): :meth:`Terminator.swap` replaces its
        certificates."""
        return self._tls

    @property
    def admin_port(self) -> int:
        return self._admin_port

    @property
    def registry(self) -> CollectorRegistry:
        """This process's metrics (with workers: the sum of theirs as last merged by
        :meth:`metrics_text`)."""
        if self._group is not None:
            return self._group.registry
        return self._require_state().metrics.registry

    async def metrics_text(self) -> bytes:
        """``/metrics``: the Prometheus text of this interceptor (of all its workers)."""
        if self._group is not None:
            return await self._group.metrics_text()
        return generate_latest(self.registry)

    def _require_state(self) -> ProxyState:
        if self._state is None:
            raise RuntimeError("the interceptor is not started")
        return self._state
