"""The scaler's pure core: counts from every interceptor replica, aggregated per target.

Sans-I/O: the shell feeds it parsed count lines with the time they arrived (the scaler's
monotonic clock, so replicas' clocks never need to agree) and asks it questions; it never
awaits and never reads a clock.

- **Concurrency** of a target is the sum of ``inFlight`` over the replicas currently known;
  :data:`~wakeway.model.trigger.ALL_TARGETS` sums every target. The concurrency *metric* is
  ``max(concurrency now, time-average over the metric's window)``; the average comes from the
  deltas of each replica's monotonic ``busy`` request-seconds, spread evenly over the time
  between the two lines that carried them (a 30 s request reported when it ends adds 10 s to a
  10 s window, not 30).
- **Activity**: a target is active while anything is in flight, and for ``activity_window``
  seconds after its last request began or ended (its ``requests`` counter rose, or its
  ``inFlight`` fell). A request that begins and ends between two lines of a replica is never
  seen in flight, but its counter still rises: steady traffic of short requests stays active.
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
"""Windows kept per target (distinct metric/window/granularity asked for); LRU beyond."""

_WindowSpec = tuple[str, float, float]  # (metric kind, window, granularity)

_ZERO = Counts(0, 0, 0)


class RateWindow:
    """Amounts (requests, or request-seconds) in buckets of ``granularity`` seconds; their sum
    per second over ``window`` seconds."""

    __slots__ = ("_buckets", "_n", "granularity", "last_used")

    def __init__(self, window: float, granularity: float, now: float) -> None:
        self.granularity = granularity
        self._n = max(1, math.ceil(window / granularity - 1e-9))
        self._buckets: deque[list[float]] = deque()  # [bucket index, amount], oldest first
        self.last_used = now

    def add(self, now: float, count: float) -> None:
        if count <= 0:
            return
        index = math.floor(now / self.granularity)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= index:
            buckets[-1][1] += count  # same bucket (or a clock that did not advance)
        else:
            buckets.append([index, count])
        self._prune(index)

    def add_spread(self, start: float, end: float, amount: float) -> None:
        """``amount`` accrued evenly from ``start`` to ``end``: each bucket gets its share (only
        the buckets still inside the window are touched)."""
        if amount <= 0:
            return
        g = self.granularity
        if end - start <= 0 or math.floor(start / g) == math.floor(end / g):
            self.add(end, amount)
            return
        per_second = amount / (end - start)
        first = max(math.floor(start / g), math.floor(end / g) - self._n + 1)
        for index in range(first, math.floor(end / g) + 1):
            lo, hi = max(start, index * g), min(end, (index + 1) * g)
            if hi > lo:
                self.add(lo, per_second * (hi - lo))

    def total(self, now: float) -> float:
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
    reported: dict[str, float] = field(default_factory=dict)  # key -> when its counts last came
    last_seen: float = 0.0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Applied:
    """What one line changed: targets whose concurrency or activity changed (wake-ups are among
    them), and whether the stream must be reopened (it cannot be trusted: a change without a
    snapshot first, or a gap in ``seq``)."""

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
        self._last_activity: dict[str, float] = {}  # key -> when a request last began or ended
        self._woken: set[str] = set()  # keys whose held requests went from none to some
        self._windows: dict[str, OrderedDict[_WindowSpec, RateWindow]] = {}

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
        for key in [k for k, t in self._last_activity.items() if now - t > self.window_idle]:
            del self._last_activity[key]
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

    def take_woken(self) -> frozenset[str]:
        """Targets whose held requests (over every replica) went from none to some since the
        last call: wakes, whatever kind of line brought them."""
        woken, self._woken = frozenset(self._woken), set()
        return woken

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

    def counts(self, namespace: str | None = None) -> dict[str, tuple[int, int]]:
        """Requests in flight and held per target (``namespace/name``) that has any, summed
        over the replicas; only ``namespace``'s targets when it is given."""
        keys = self._in_flight.keys() | self._held.keys()
        if namespace is not None:
            keys = {k for k in keys if k.partition("/")[0] == namespace}
        return {k: (self._in_flight.get(k, 0), self._held.get(k, 0)) for k in sorted(keys)}

    def busy(self) -> tuple[int, int]:
        """How many targets have requests in flight, and how many have requests held."""
        return len(self._in_flight), len(self._held)

    def rate(self, target: MetricTarget, now: float) -> float:
        """Per second over the target's window (starts counting on the first ask): requests for
        requestRate, request-seconds (the average concurrency) for concurrency."""
        return self._window(target, now).rate(now)

    def value(self, target: MetricTarget, now: float) -> float:
        """The metric KEDA scales on: concurrency (in flight now, or the window's average if
        higher) or request rate."""
        if target.kind == CONCURRENCY:
            return max(float(self.concurrency(target.key)), self.rate(target, now))
        return self.rate(target, now)

    def active(self, target: MetricTarget, now: float) -> bool:
        """Anything in flight (held requests included), a request begun or ended within the
        activity window, or for requestRate a rate above 0."""
        if self.concurrency(target.key) > 0:
            return True
        last = self._last_activity.get(target.key)
        if last is not None and now - last < target.activity_window:
            return True
        return target.kind != CONCURRENCY and self.rate(target, now) > 0

    def active_until(self, target: MetricTarget, now: float) -> float | None:
        """When ``target``, active now only through its activity window, turns inactive if
        nothing else happens (None: not that case)."""
        if self.concurrency(target.key) > 0:
            return None
        last = self._last_activity.get(target.key)
        if last is None or now - last >= target.activity_window:
            return None
        return last + target.activity_window

    def last_activity(self, key: str) -> float | None:
        """When a request of ``key`` last began or ended, as far as the lines told."""
        return self._last_activity.get(key)

    def watch(self, target: MetricTarget, now: float) -> None:
        """Start (or keep) the window of ``target`` so its requests count from now on."""
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
            state.reported.pop(key, None)
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
        since = state.reported.get(key, now)
        state.reported[key] = now
        if not baseline:
            if old is None or new.requests < old.requests:
                # A target this replica had not seen before, or a counter that went down (the
                # replica restarted): the new values are the deltas.
                delta, busy = new.requests, new.busy
            else:
                delta, busy = new.requests - old.requests, max(0.0, new.busy - old.busy)
            if delta:
                self._mark_active(key, now, changed)
            self._accrue(key, delta, since, now, busy)
            self._accrue(ALL_TARGETS, 0, since, now, busy)
        before = old or _ZERO
        self._shift(key, new.in_flight - before.in_flight, new.held - before.held, changed)
        if new.in_flight < before.in_flight:
            self._mark_active(key, now, changed)  # a request ended: the quiet starts now
        state.counts[key] = new

    def _accrue(self, key: str, requests: int, since: float, now: float, busy: float) -> None:
        for (kind, _, _), window in self._windows.get(key, {}).items():
            if kind == CONCURRENCY:
                window.add_spread(since, now, busy)
            else:
                window.add(now, requests)

    def _mark_active(self, key: str, now: float, changed: set[str]) -> None:
        self._last_activity[key] = now
        self._last_activity[ALL_TARGETS] = now
        changed.add(key)
        changed.add(ALL_TARGETS)

    def _shift(self, key: str, d_in_flight: int, d_held: int, changed: set[str]) -> None:
        if d_held:
            before = self._held.get(key, 0)
            held = before + d_held
            if held and not before:
                self._woken.add(key)
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
        spec = (target.kind, target.window, target.granularity)
        window = windows.get(spec)
        if window is None:
            window = windows[spec] = RateWindow(target.window, target.granularity, now)
            while len(windows) > MAX_WINDOWS_PER_TARGET:
                windows.popitem(last=False)
        else:
            windows.move_to_end(spec)
            window.last_used = now
        return window
