"""The aggregator on the event loop: fed by the subscribers, read by the servicer, watched by
``StreamIsActive``.

Watchers are one-slot signals (an :class:`asyncio.Event` per stream), so a burst of changes
costs a watcher one wake-up, never a queue. A timer drops stale replicas at the moment they go
stale (one pending timer, re-armed when it fires).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from wakeway.model import logs
from wakeway.model.trigger import MetricTarget

from .aggregate import Aggregator
from .wire import CountLine

log = logging.getLogger("wakeway.scaler")


class LiveCounts:
    def __init__(self, aggregator: Aggregator, clock: Callable[[], float] = time.monotonic) -> None:
        self.aggregator = aggregator
        self._clock = clock
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.wakes = 0  # targets seen going from no held request to some

    # -- fed by subscribers ----------------------------------------------------------------

    def apply(self, replica: str, line: CountLine) -> bool:
        """Apply one line from ``replica``; true when its stream must be reopened."""
        applied = self.aggregator.apply(replica, line, self._clock())
        if applied.changed:
            self._notify(applied.changed)
        for key in self.aggregator.take_woken():
            self.wakes += 1
            log.info(
                "wake %s: requests held at %s",
                key,
                replica,
                extra=logs.event("wake-seen", target=key, replica=replica),
            )
        if self._timer is None and not self._closed:
            self._arm()
        return applied.resync

    def drop(self, replica: str) -> None:
        self._notify(self.aggregator.drop(replica))

    # -- read by the servicer ----------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def active(self, target: MetricTarget) -> bool:
        return self.aggregator.active(target, self._clock())

    def active_and_until(self, target: MetricTarget) -> tuple[bool, float | None, float]:
        """Whether ``target`` is active, until when if only its activity window keeps it so,
        and the time asked: all three of one reading of the clock, so the window cannot run out
        between the two answers."""
        now = self._clock()
        agg = self.aggregator
        return agg.active(target, now), agg.active_until(target, now), now

    def value(self, target: MetricTarget) -> float:
        return self.aggregator.value(target, self._clock())

    def watch_metric(self, target: MetricTarget) -> None:
        self.aggregator.watch(target, self._clock())

    @contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set whenever the concurrency or activity of ``key`` changes (or a replica is
        dropped)."""
        event = asyncio.Event()
        watchers = self._watchers.setdefault(key, set())
        watchers.add(event)
        try:
            yield event
        finally:
            watchers.discard(event)
            if not watchers:
                self._watchers.pop(key, None)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._closed = False
        if self._timer is None:
            self._arm()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for watchers in self._watchers.values():
            for event in watchers:
                event.set()

    def _notify(self, keys: Iterable[str]) -> None:
        for key in keys:
            for event in self._watchers.get(key, ()):
                event.set()

    def _arm(self) -> None:
        now = self._clock()
        agg = self.aggregator
        deadline = agg.next_expiry()
        delay = agg.stale_after if deadline is None else max(0.0, deadline - now)
        # A hair past the deadline, so the replica is strictly stale when the timer fires.
        self._timer = asyncio.get_running_loop().call_later(delay + 0.001, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._closed:
            return
        self._notify(self.aggregator.expire(self._clock()))
        self._arm()
