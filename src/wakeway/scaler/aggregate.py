"""The scaler's pure core: counts from every interceptor replica, aggregated per target.

Sans-I/O: the shell feeds it parsed count lines with the time they arrived (the scaler's
monotonic clock, so replicas' clocks never need to agree) and asks it questions; it never
awaits and never reads a clock.

- **Concurrency** of a target is the sum of ``inFlight`` over the replicas currently known;
  :data:`~wakeway.model.trigger.ALL_TARGETS` sums every target.
- **Request rate** comes from the deltas of each replica's monotonic ``requests`` counter, added
  to time buckets of the object's granularity, and divided by the window. Deltas are recorded
  when they arrive, so a replica that goes away keeps its past requests in the window (the rate
  decays as they age out, it does not drop), and a replica seen for the first time only sets a
  baseline (its history is not counted again). A counter that went down means the replica
  restarted: its new value is the delta.
- A replica is **dropped** when nothing (not even a heartbeat) arrived from it for
  ``stale_after`` seconds, whether its stream is still open or not; until then its last counts
  stand, so a blip does not make a busy target look idle. Its state starts over with its next
  snapshot.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from wakeway.model.trigger import ALL_TARGETS, CONCURRENCY, MetricTarget

from .wire import CountLine, Counts

MAX_WINDOWS_PER_TARGET = 4
"""Rate windows kept per target (distinct window/granularity pairs asked for); LRU beyond."""

_ZERO = Counts(0, 0, 0)


class RateWindow:
    """Request counts in buckets of ``granularity`` seconds; the rate over ``window`` seconds."""

    __slots__ = ("_buckets", "_n", "granularity", "last_used", "window")

    def __init__(self, window: float, granularity: float, now: float) -> None:
        self.window = window
        self.granularity = granularity
        self._n = max(1, math.ceil(window / granularity - 1e-9))
        self._buckets: deque[list[int]] = deque()  # [bucket index, count], oldest first
        self.last_used = now

    def add(self, now: float, count: int) -> None:
        if count <= 0:
            return
        index = math.floor(now / self.granularity)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= index:
            buckets[-1][1] += count  # same bucket (or a clock that did not advance)
        else:
            buckets.append([index, count])
        self._prune(index)

    def total(self, now: float) -> int:
        """Requests in the last ``window`` seconds (whole buckets, the current one included)."""
        index = math.floor(now / self.granularity)
        self._prune(index)
        return sum(count for _, count in self._buckets)

    def rate(self, now: float) -> float:
        return self.total(now) / (self._n * self.granularity)

    def _prune(self, index: int) -> None:
        oldest = index - self._n + 1
        buckets = self._buckets
        while buckets and buckets[0][0] < oldest:
            buckets.popleft()


@dataclass(slots=True)
class _Replica:
    counts: dict[str, Counts] = field(default_factory=dict)
    last_seen: float = 0.0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Applied:
    """What one line changed: targets whose concurrency changed (wake-ups are among them), and
    whether the stream must be reopened (it cannot be trusted: a change without a snapshot
    first, or a gap in ``seq``)."""

    changed: frozenset[str] = frozenset()
    resync: bool = False


class Aggregator:
    """Latest counts per interceptor replica; concurrency and request rate per target."""

    def __init__(self, stale_after: float, window_idle: float = 600.0) -> None:
        self.stale_after = stale_after
        self.window_idle = window_idle
        self._replicas: dict[str, _Replica] = {}
        self._in_flight: dict[str, int] = {}
        self._held: dict[str, int] = {}
        self._total = 0
        self._windows: dict[str, OrderedDict[tuple[float, float], RateWindow]] = {}

    # -- feeding ---------------------------------------------------------------------------

    def apply(self, replica: str, line: CountLine, now: float) -> Applied:
        """One line from ``replica``'s stream, received at ``now``."""
        state = self._replicas.get(replica)
        if line.kind == "snapshot":
            first = state is None
            if state is None:
                state = self._replicas[replica] = _Replica()
            replaced = self._replace(state, line.targets, now, baseline=first)
            state.seq = line.seq
            state.last_seen = now
            return Applied(frozenset(replaced))
        if state is None:
            return Applied(resync=True)  # its state was dropped; only a snapshot can rebuild it
        if line.kind == "heartbeat":
            state.last_seen = now
            return Applied(resync=line.seq != state.seq)
        if line.seq != state.seq + 1:
            return Applied(resync=True)
        state.seq = line.seq
        state.last_seen = now
        changed: set[str] = set()
        for key, counts in line.targets.items():
            self._update(state, key, counts, now, changed, baseline=False)
        return Applied(frozenset(changed))

    def expire(self, now: float) -> frozenset[str]:
        """Drop replicas silent for longer than ``stale_after``, and rate windows nobody asked
        about for ``window_idle``; returns the targets whose concurrency changed."""
        changed: set[str] = set()
        for replica in [r for r, s in self._replicas.items() if self._is_stale(s, now)]:
            changed |= self.drop(replica)
        for key in list(self._windows):
            windows = self._windows[key]
            for spec in [s for s, w in windows.items() if now - w.last_used > self.window_idle]:
                del windows[spec]
            if not windows:
                del self._windows[key]
        return frozenset(changed)

    def drop(self, replica: str) -> frozenset[str]:
        """Forget ``replica`` now (its past requests stay in the rate windows)."""
        state = self._replicas.pop(replica, None)
        if state is None:
            return frozenset()
        changed: set[str] = set()
        for key, counts in state.counts.items():
            self._shift(key, -counts.in_flight, -counts.held, changed)
        return frozenset(changed)

    def next_expiry(self) -> float | None:
        """When the earliest replica goes stale if nothing arrives from it (None: no replicas)."""
        if not self._replicas:
            return None
        return min(s.last_seen for s in self._replicas.values()) + self.stale_after

    # -- questions (answered from memory) ----------------------------------------------------

    @property
    def replicas(self) -> frozenset[str]:
        return frozenset(self._replicas)

    def concurrency(self, key: str) -> int:
        if key == ALL_TARGETS:
            return self._total
        return self._in_flight.get(key, 0)

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    def rate(self, target: MetricTarget, now: float) -> float:
        """Requests per second over the target's window (starts counting on the first ask)."""
        return self._window(target, now).rate(now)

    def value(self, target: MetricTarget, now: float) -> float:
        """The metric KEDA scales on: concurrency or request rate."""
        if target.kind == CONCURRENCY:
            return float(self.concurrency(target.key))
        return self.rate(target, now)

    def active(self, target: MetricTarget, now: float) -> bool:
        """Anything in flight (held requests included); for requestRate also a rate above 0."""
        if self.concurrency(target.key) > 0:
            return True
        return target.kind != CONCURRENCY and self.rate(target, now) > 0

    def watch(self, target: MetricTarget, now: float) -> None:
        """Start (or keep) the rate window of ``target`` so its requests count from now on."""
        if target.kind != CONCURRENCY:
            self._window(target, now)

    # -- internals -----------------------------------------------------------------------------

    def _is_stale(self, state: _Replica, now: float) -> bool:
        return now - state.last_seen > self.stale_after

    def _replace(
        self, state: _Replica, targets: Mapping[str, Counts], now: float, *, baseline: bool
    ) -> set[str]:
        changed: set[str] = set()
        for key in [k for k in state.counts if k not in targets]:
            # Gone from a snapshot: the replica restarted and has not seen this target since.
            self._update(state, key, _ZERO, now, changed, baseline=True)
            del state.counts[key]
        for key, counts in targets.items():
            self._update(state, key, counts, now, changed, baseline=baseline)
        return changed

    def _update(
        self,
        state: _Replica,
        key: str,
        new: Counts,
        now: float,
        changed: set[str],
        *,
        baseline: bool,
    ) -> None:
        old = state.counts.get(key)
        if not baseline:
            if old is None:
                delta = new.requests  # a target this replica had not seen before
            elif new.requests >= old.requests:
                delta = new.requests - old.requests
            else:
                delta = new.requests  # the counter went down: the replica restarted
            if delta:
                for window in self._windows.get(key, {}).values():
                    window.add(now, delta)
        before = old or _ZERO
        self._shift(key, new.in_flight - before.in_flight, new.held - before.held, changed)
        state.counts[key] = new

    def _shift(self, key: str, d_in_flight: int, d_held: int, changed: set[str]) -> None:
        if d_held:
            held = self._held.get(key, 0) + d_held
            if held:
                self._held[key] = held
            else:
                self._held.pop(key, None)
        if not d_in_flight:
            return
        value = self._in_flight.get(key, 0) + d_in_flight
        if value:
            self._in_flight[key] = value
        else:
            self._in_flight.pop(key, None)
        self._total += d_in_flight
        changed.add(key)
        changed.add(ALL_TARGETS)

    def _window(self, target: MetricTarget, now: float) -> RateWindow:
        windows = self._windows.setdefault(target.key, OrderedDict())
        spec = (target.window, target.granularity)
        window = windows.get(spec)
        if window is None:
            window = windows[spec] = RateWindow(target.window, target.granularity, now)
            while len(windows) > MAX_WINDOWS_PER_TARGET:
                windows.popitem(last=False)
        else:
            windows.move_to_end(spec)
        window.last_used = now
        return window
