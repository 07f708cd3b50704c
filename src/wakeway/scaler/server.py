"""The scaler process: the gRPC server, the count-stream subscribers, and their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket

import grpc
from aiohttp import web

from wakeway.observe.metrics import serve_metrics
from wakeway.protocol.externalscaler_pb2_grpc import add_ExternalScalerServicer_to_server

from .aggregate import Aggregator
from .kube_replicas import KubeReplicas
from .live import LiveCounts
from .metrics import CallStats, scaler_registry, targets_handler
from .replicas import ReplicaSource, StaticReplicas
from .routes import KubeRoutes, RouteSource, StaticRoutes
from .service import ExternalScalerService
from .settings import ScalerSettings
from .subscriber import Subscribers

log = logging.getLogger(__name__)


def replica_source(settings: ScalerSettings) -> ReplicaSource:
    """The replica source the settings ask for; raises ``ValueError`` saying what is missing.

    ``interceptors`` selects :class:`StaticReplicas`; ``interceptor_service`` the ready
    endpoints of that Service's EndpointSlices (:class:`KubeReplicas`).
    """
    if settings.interceptors:
        return StaticReplicas(settings.interceptors)
    if settings.interceptor_service:
        if not settings.namespace:
            raise ValueError(
                "namespace: required with interceptor_service (the Service's namespace)"
            )
        return KubeReplicas(
            settings.kubeconfig or None,
            settings.namespace,
            settings.interceptor_service,
            settings.interceptor_admin_port,
        )
    raise ValueError(
        "no interceptors: set interceptors (--interceptors HOST:PORT,...) or interceptor_service"
    )


def route_source(settings: ScalerSettings) -> RouteSource:
    """InterceptorRoutes from the cluster when the scaler talks to one (``interceptor_service``
    or ``kubeconfig`` set), else none."""
    if settings.interceptor_service or settings.kubeconfig:
        return KubeRoutes(settings.kubeconfig or None)
    return StaticRoutes()


class Scaler:
    """Serves KEDA's external-scaler protocol from counts pushed by the interceptor replicas."""

    def __init__(
        self,
        settings: ScalerSettings,
        replicas: ReplicaSource | None = None,
        routes: RouteSource | None = None,
    ) -> None:
        self.settings = settings
        self.replicas = replicas or StaticReplicas(settings.interceptors)
        self.routes = routes or StaticRoutes()
        self.live = LiveCounts(Aggregator(settings.stale_after, settings.window_idle))
        self.service = ExternalScalerService(self.live, settings, self.routes)
        self.subscribers = Subscribers(self.replicas, self.live, settings)
        self._server: grpc.aio.Server | None = None
        self._subscribers_task: asyncio.Task[None] | None = None
        self._port = 0
        self.calls = CallStats()
        self.registry = scaler_registry(self.service, self.subscribers, self.live, self.calls)

    async def start(self) -> None:
        s = self.settings
        options = [
            ("grpc.so_reuseport", 0),
            # Clients may find a dead connection by keepalive pings (the wakeway operator pings
            # every few seconds rather than having every stream re-send): never refuse them.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ]
        server = grpc.aio.server(options=options, interceptors=[self.calls])
        add_ExternalScalerServicer_to_server(self.service, server)
        address = f"[{s.listen_host}]" if ":" in s.listen_host else s.listen_host
        if s.listen_port:
            # Bind once ourselves: a taken address raises a plain OSError naming it, where
            # gRPC would log its own error line first.
            family = socket.AF_INET6 if ":" in s.listen_host else socket.AF_INET
            socket.create_server((s.listen_host, s.listen_port), family=family).close()
        self._port = server.add_insecure_port(f"{address}:{s.listen_port}")
        if not self._port:
            raise OSError(f"cannot listen on {address}:{s.listen_port}")
        await server.start()
        self._server = server
        await self.routes.start()
        self.live.start()
        self._subscribers_task = asyncio.create_task(self.subscribers.run(), name="subscribers")
        log.info("scaler: gRPC on %s:%d", s.listen_host, self._port)

    @property
    def port(self) -> int:
        return self._port

    async def stop(self, grace: float | None = None) -> None:
        self.live.close()  # ends StreamIsActive waits promptly
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace if grace is None else grace)
            self._server = None
        task, self._subscribers_task = self._subscribers_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.routes.stop()

    async def __aenter__(self) -> Scaler:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def run_scaler(settings: ScalerSettings, replicas: ReplicaSource | None = None) -> int:
    """Run until SIGTERM or SIGINT; the ``wakeway scaler`` command."""
    if replicas is None:
        replicas = replica_source(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    scaler = Scaler(settings, replicas, route_source(settings))
    metrics: web.AppRunner | None = None
    try:
        if settings.metrics_port:  # first: a busy port stops it before anything else runs
            metrics = await serve_metrics(
                scaler.registry,
                settings.metrics_host,
                settings.metrics_port,
                {"/targets": targets_handler(scaler.live)},
            )
        await scaler.start()
        log.info(
            "scaler: started; gRPC on %s:%d, metrics on %s",
            settings.listen_host,
            scaler.port,
            f"{settings.metrics_host}:{settings.metrics_port}" if metrics else "off",
        )
        await stop.wait()
    finally:
        log.info("scaler: stopping")
        if metrics is not None:
            await metrics.cleanup()
        await scaler.stop()
        log.info("scaler: stopped")
    return 0
