"""Prometheus metrics kept as plain numbers on the hot path and exposed by a custom collector.

prometheus-client's own Counter/Histogram take a lock per update; here a finished request costs
one set lookup, one dict lookup and a bisect, and the collector turns the numbers into metric
families at scrape time. Target keys (``namespace/name``, ``""`` when no route matched) are split
into ``namespace`` and ``name`` labels only then.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from time import perf_counter, time
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from wakeway.model.settings import Address
from wakeway.observe import accesslog
from wakeway.observe.metrics import FAST_BUCKETS, Histogram, build_info, histograms, labelled

from .counts import Counters
from .headers import HeadFacts

# From 0.1 ms (a warm forward on loopback) to 60 s: past the default hold deadline
# (conditionWait, 20 s) and the longest a held request is usually let wait.
DURATION_BUCKETS = (*FAST_BUCKETS, 20.0, 30.0, 60.0)
COLD_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

# Methods with a label of their own; any other is counted as "other" (a client may send any
# token as an HTTP/2 :method, and a label per token would grow without bound).
METHODS = frozenset(
    (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH")
)
OTHER = b"other"

RequestKey = tuple[str, bytes, int, bool]  # target, method, status, cold


class Finished(Protocol):
    """A finished request as the metrics read it (the interceptor's Exchange)."""

    tkey: str
    method: bytes
    status: int
    cold: bool
    began: float  # perf_counter() when its head began to arrive
    # For the access log:
    url: bytes
    facts: HeadFacts | None
    sent: int  # response body bytes
    addr: Address | None


class Metrics:
    """Request, duration and cold-start figures per target; in-flight/held read from counters."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.requests: dict[RequestKey, Histogram] = {}
        self.cold_starts: dict[str, int] = {}
        self.cold_waits: dict[str, Histogram] = {}
        self.exempts: dict[tuple[str, str], int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self.registry.register(build_info("interceptor"))
        self.access = accesslog.active()

    def finished(self, ex: Finished) -> None:
        """``ex`` got its whole answer (or its client went away: status 499)."""
        method = ex.method
        if method not in METHODS:
            method = OTHER
        key = (ex.tkey, method, ex.status or 499, ex.cold)
        hist = self.requests.get(key)
        if hist is None:
            hist = self.requests[key] = Histogram(DURATION_BUCKETS)
        seconds = perf_counter() - ex.began
        hist.observe(seconds)
        access = self.access
        if access is not None:
            facts = ex.facts
            host = None if facts is None else facts.host
            status = key[2]
            access.record(
                (
                    time(),
                    ex.method,
                    host,
                    ex.url,
                    status,
                    seconds,
                    ex.sent,
                    ex.tkey,
                    ex.cold,
                    ex.addr,
                )
            )

    def cold_start(self, target: str) -> None:
        self.cold_starts[target] = self.cold_starts.get(target, 0) + 1

    def exempt(self, target: str, kind: str) -> None:
        """A request that woke nothing and counted as no activity, answered as ``kind``."""
        key = (target, kind)
        self.exempts[key] = self.exempts.get(key, 0) + 1

    def cold_wait(self, target: str, seconds: float) -> None:
        hist = self.cold_waits.get(target)
        if hist is None:
            hist = self.cold_waits[target] = Histogram(COLD_WAIT_BUCKETS)
        hist.observe(seconds)


def _split(target: str) -> tuple[str, str]:
    namespace, _, name = target.partition("/")
    return namespace, name


def _by_target(values: Mapping[str, float]) -> dict[tuple[str, ...], float]:
    return {_split(target): n for target, n in values.items()}


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.m
        requests: dict[tuple[str, ...], Histogram] = {}
        for (target, method, status, cold), hist in m.requests.items():
            labels = (*_split(target), method.decode("latin-1"), str(status), str(cold).lower())
            requests[labels] = hist
        target_labels = ["namespace", "name"]
        request_labels = [*target_labels, "method", "code", "cold"]
        yield labelled(
            CounterMetricFamily,
            "wakeway_requests",
            "Requests answered, by target (no route: namespace and name ''), method, status "
            "code and whether they waited for a cold start",
            request_labels,
            {labels: hist.count for labels, hist in requests.items()},
        )
        yield histograms(
            "wakeway_request_duration_seconds",
            "Time from a request's head to the end of its response, including any hold",
            request_labels,
            requests,
        )
        snapshot = m.counters.snapshot()
        for metric, documentation, held in (
            ("wakeway_in_flight_requests", "Requests held or being forwarded", False),
            ("wakeway_held_requests", "Requests waiting for a ready endpoint", True),
        ):
            counts = {t: c.held if held else c.in_flight for t, c in snapshot.items()}
            yield labelled(
                GaugeMetricFamily, metric, documentation, target_labels, _by_target(counts)
            )
        yield labelled(
            CounterMetricFamily,
            "wakeway_cold_starts",
            "Times a target went from no held request to one (each is a wake signal)",
            target_labels,
            _by_target(m.cold_starts),
        )
        yield histograms(
            "wakeway_cold_start_wait_seconds",
            "How long held requests waited until released, expired or abandoned",
            target_labels,
            {_split(t): hist for t, hist in m.cold_waits.items()},
        )
        yield labelled(
            CounterMetricFamily,
            "wakeway_exempt_requests",
            "Requests that woke nothing and counted as no activity (wake exclusions and "
            "maintenance), by answer: static, maintenance, or passthrough (forwarded)",
            [*target_labels, "kind"],
            {(*_split(t), kind): n for (t, kind), n in m.exempts.items()},
        )
