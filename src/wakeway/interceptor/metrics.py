"""Prometheus metrics kept as plain numbers on the hot path and exposed by a custom collector.

prometheus-client's own Counter/Histogram take a lock per update; here each request costs a few
dict operations, and the collector turns the numbers into metric families at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from .counts import Counters

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COLD_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(bound), running))
        out.append(("+Inf", running + self.counts[-1]))
        return out


class Metrics:
    """Request, duration and cold-start figures per target; in-flight/held read from counters."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.responses: dict[tuple[str, int], int] = {}
        self.durations: dict[str, _Histogram] = {}
        self.cold_starts: dict[str, int] = {}
        self.cold_waits: dict[str, _Histogram] = {}
        self.exempts: dict[tuple[str, str], int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def response(self, target: str, status: int, seconds: float) -> None:
        key = (target, status)
        self.responses[key] = self.responses.get(key, 0) + 1
        hist = self.durations.get(target)
        if hist is None:
            hist = self.durations[target] = _Histogram(DURATION_BUCKETS)
        hist.observe(seconds)

    def cold_start(self, target: str) -> None:
        self.cold_starts[target] = self.cold_starts.get(target, 0) + 1

    def exempt(self, target: str, kind: str) -> None:
        """A request that woke nothing and counted as no activity, answered as ``kind``."""
        key = (target, kind)
        self.exempts[key] = self.exempts.get(key, 0) + 1

    def cold_wait(self, target: str, seconds: float) -> None:
        hist = self.cold_waits.get(target)
        if hist is None:
            hist = self.cold_waits[target] = _Histogram(COLD_WAIT_BUCKETS)
        hist.observe(seconds)


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        requests = CounterMetricFamily(
            "wakeway_requests",
            "Requests answered, by target and status code (no route: target '')",
            labels=["target", "code"],
        )
        for (target, code), n in sorted(m.responses.items()):
            requests.add_metric([target, str(code)], n)
        yield requests
        duration = HistogramMetricFamily(
            "wakeway_request_duration_seconds",
            "Time from a request's head to the end of its response, including any hold",
            labels=["target"],
        )
        for target, hist in sorted(m.durations.items()):
            duration.add_metric([target], hist.buckets(), hist.total)
        yield duration
        in_flight = GaugeMetricFamily(
            "wakeway_in_flight_requests", "Requests held or being forwarded", labels=["target"]
        )
        held = GaugeMetricFamily(
            "wakeway_held_requests", "Requests waiting for a ready endpoint", labels=["target"]
        )
        for target, counts in sorted(m.counters.snapshot().items()):
            in_flight.add_metric([target], counts.in_flight)
            held.add_metric([target], counts.held)
        yield in_flight
        yield held
        cold = CounterMetricFamily(
            "wakeway_cold_starts",
            "Times a target went from no held request to one (each is a wake signal)",
            labels=["target"],
        )
        for target, n in sorted(m.cold_starts.items()):
            cold.add_metric([target], n)
        yield cold
        wait = HistogramMetricFamily(
            "wakeway_cold_start_wait_seconds",
            "How long held requests waited until released, expired or abandoned",
            labels=["target"],
        )
        for target, hist in sorted(m.cold_waits.items()):
            wait.add_metric([target], hist.buckets(), hist.total)
        yield wait
        exempt = CounterMetricFamily(
            "wakeway_exempt_requests",
            "Requests that woke nothing and counted as no activity (wake exclusions and "
            "maintenance), by answer: static, maintenance, or passthrough (forwarded)",
            labels=["target", "kind"],
        )
        for (target, kind), n in sorted(m.exempts.items()):
            exempt.add_metric([target, kind], n)
        yield exempt
