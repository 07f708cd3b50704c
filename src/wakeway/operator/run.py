"""``wakeway operator``: connect, pick the mode, serve /livez and /readyz, run the controller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from wakeway.kube import Kube
from wakeway.observe.metrics import build_info, histograms, labelled, metrics_handler
from wakeway.operator.controller import Controller, ScalerLink, detect_mode
from wakeway.operator.settings import OperatorSettings

log = logging.getLogger("wakeway.operator")


async def run_operator(settings: OperatorSettings) -> None:
    kube = await Kube.connect(settings.kubeconfig or None)
    runner: web.AppRunner | None = None
    link: ScalerLink | None = None
    try:
        mode = await detect_mode(kube, settings.mode)
        log.info("operator: %s mode (setting %s)", mode, settings.mode)
        controller_ref: list[Controller] = []
        if mode == "standalone":
            from wakeway.operator.scalerlink import GrpcScalerLink

            link = GrpcScalerLink(
                settings,
                lambda key: controller_ref[0].poke(key),
                wake=lambda key: controller_ref[0].wake(key),
            )
        controller = Controller(kube, settings, mode, link)
        controller_ref.append(controller)
        if settings.health_port:
            runner = await _health(controller, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        task = asyncio.create_task(controller.run(), name="controller")
        started = asyncio.create_task(_started(controller, mode, settings))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        started.cancel()
        if task not in done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        if link is not None and hasattr(link, "close"):
            await link.close()
        if runner is not None:
            await runner.cleanup()
        await kube.close()
        log.info("operator stopped")


async def _started(controller: Controller, mode: str, settings: OperatorSettings) -> None:
    """The startup summary, once the caches are synced and the first passes queued."""
    await controller.ready.wait()
    health = settings.health_port
    log.info(
        "operator started: %s mode, %d HTTPScaledObjects, health and metrics on %s",
        mode,
        len(controller.httpsos.items()),
        f"{settings.health_host}:{health}" if health else "off",
    )


async def _health(controller: Controller, settings: OperatorSettings) -> web.AppRunner:
    async def livez(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if controller.ready.is_set():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="caches not synced yet\n")

    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Metrics(controller))
    registry.register(build_info("operator"))

    app = web.Application()
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler(registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.health_host, settings.health_port).start()
    return runner


class _Metrics(Collector):
    """The controller's counters, read at scrape time."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "wakeway_operator_reconciles",
            "Reconcile passes over an HTTPScaledObject key",
            value=self.controller.reconciles,
        )
        yield CounterMetricFamily(
            "wakeway_operator_resyncs",
            "Periodic resync passes started",
            value=self.controller.resyncs,
        )
        yield CounterMetricFamily(
            "wakeway_operator_status_writes",
            "HTTPScaledObject status writes that changed the stored status",
            value=self.controller.status_writes,
        )
        stats = self.controller.stats
        yield histograms(
            "wakeway_operator_reconcile_duration_seconds",
            "Time one reconcile pass over a key took, failed passes included",
            [],
            {(): stats.reconcile_seconds},
        )
        yield labelled(
            CounterMetricFamily,
            "wakeway_operator_reconcile_errors",
            "Reconcile passes that raised, by kind: the API error's class (NotFound, Conflict, "
            "Forbidden, Invalid, Unavailable, ...) or internal",
            ["kind"],
            {(kind,): n for kind, n in stats.errors.items()},
        )
        yield labelled(
            CounterMetricFamily,
            "wakeway_operator_scale_writes",
            "Replica writes by a reconcile pass (standalone mode): sleep (to 0) or scale (to N)",
            ["action"],
            {(action,): n for action, n in stats.scales.items()},
        )
        yield labelled(
            CounterMetricFamily,
            "wakeway_operator_fast_wakes",
            "Wakes on the fast path (the scaler's stream said active while the workload was at "
            "0): done, or not (another writer was first, or the write failed)",
            ["done"],
            {(str(done).lower(),): n for done, n in stats.fast_wakes.items()},
        )
        yield GaugeMetricFamily(
            "wakeway_operator_queue_depth",
            "Keys waiting in the work queue (not counting those being reconciled)",
            value=len(self.controller.queue),
        )
