"""Prometheus helpers shared by the three components.

:class:`Histogram` keeps plain numbers (no lock, no label lookup): the owner observes values on
its own event loop and turns them into metric families at scrape time. :func:`build_info` is the
``wakeway_build_info`` gauge every component exposes, and :func:`metrics_handler` serves a
registry on an aiohttp route.
"""

from __future__ import annotations

import importlib.metadata
import platform
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

import wakeway

# Latency of calls answered from memory (the scaler's gRPC calls, a reconcile pass): 0.1 ms up.
FAST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Histogram:
    """Bucket counts and a sum, as plain numbers; ``bounds`` are the upper bounds, ascending."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs as HistogramMetricFamily takes them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


def labelled(
    kind: type[CounterMetricFamily | GaugeMetricFamily],
    name: str,
    documentation: str,
    labels: Sequence[str],
    values: Mapping[tuple[str, ...], float],
) -> Metric:
    """A counter or gauge family with one sample per label-value tuple in ``values``."""
    family = kind(name, documentation, labels=labels)
    for key, n in sorted(values.items()):
        family.add_metric(key, n)
    return family


def histograms(
    name: str,
    documentation: str,
    labels: Sequence[str],
    values: Mapping[tuple[str, ...], Histogram],
) -> Metric:
    """A histogram family with one histogram per label-value tuple in ``values``."""
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for key, hist in sorted(values.items()):
        family.add_metric(key, hist.buckets(), hist.total)
    return family


def version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    try:
        return importlib.metadata.version("wakeway")
    except importlib.metadata.PackageNotFoundError:
        return wakeway.__version__


class _BuildInfo(Collector):
    def __init__(self, component: str) -> None:
        self.labels = [component, version(), platform.python_version()]

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "wakeway_build_info",
            "Always 1: the component, its wakeway version and the Python version it runs on",
            labels=["component", "version", "python_version"],
        )
        info.add_metric(self.labels, 1)
        yield info


def build_info(component: str) -> Collector:
    """The ``wakeway_build_info{component,version,python_version} 1`` gauge."""
    return _BuildInfo(component)


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler that renders ``registry`` in the Prometheus text format."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return metrics


Handler = Callable[[web.Request], Awaitable[web.Response]]


async def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, routes: Mapping[str, Handler] | None = None
) -> web.AppRunner:
    """Serve ``/metrics`` (``registry``), ``/livez`` and any other GET ``routes`` on
    ``host:port``; clean up the runner."""

    async def livez(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/livez", livez)
    for path, handler in (routes or {}).items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
