"""Per-target counters (a pure core) and the count-stream items built from them.

Counts are plain numbers in dicts: one event loop needs no locks. A target appears once its first
request arrives and stays (``requests`` is monotonic). ``in_flight`` counts held plus forwarding
requests; ``held`` counts only the requests waiting at the cold-start gate.

Two more figures make short requests visible to whoever reads the counts later, however coarsely
they sample: ``busy`` is the integral of ``in_flight`` over time (request-seconds, monotonic), so
the average concurrency over any interval is the difference of two readings divided by its length
(a request of 1 ms adds 0.001 whether or not a reader ever saw it in flight); ``idle_since`` is
when ``in_flight`` last fell to zero (None while busy or before the first request), on the
counters' clock. The clock is injected (``time.monotonic`` by default: uvloop's ``loop.time()``
counts whole milliseconds, which would lose sub-millisecond requests), so the core stays pure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class TargetCounts:
    in_flight: int
    held: int
    requests: int
    busy: float = 0.0  # request-seconds in flight so far (monotonic)
    idle_since: float | None = None  # counters' clock; local to this process, not on the wire

    def to_json(self) -> dict[str, int | float]:
        return {
            "inFlight": self.in_flight,
            "held": self.held,
            "requests": self.requests,
            "busy": round(self.busy, 6),
        }


@dataclass(frozen=True, slots=True)
class CountUpdate:
    """One item of the count stream.

    ``snapshot`` carries every known target; ``change`` only the targets that changed since the
    previous item; ``wake`` is true when at least one of them went from 0 to 1 held request.
    ``seq`` increases by one per item of a subscription.
    """

    kind: Literal["snapshot", "change"]
    seq: int
    counts: Mapping[str, TargetCounts]
    wake: bool = False

    def to_json_line(self, now: float) -> bytes:
        doc = {
            "type": self.kind,
            "seq": self.seq,
            "time": round(now, 6),
            "wake": self.wake,
            "targets": {k: v.to_json() for k, v in self.counts.items()},
        }
        return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def heartbeat_line(seq: int, now: float) -> bytes:
    return (
        json.dumps(
            {"type": "heartbeat", "seq": seq, "time": round(now, 6)}, separators=(",", ":")
        ).encode()
        + b"\n"
    )


class TracksChanges:
    """The targets changed since the last :meth:`take_changes`, and which of them woke: what
    the count stream reads of :class:`Counters` and of the primary's sum over its workers."""

    __slots__ = ()
    changed: set[str]
    woken: set[str]

    def now(self) -> float:
        raise NotImplementedError

    def get(self, target: str, now: float | None = None) -> TargetCounts:
        raise NotImplementedError

    def snapshot(self) -> dict[str, TargetCounts]:
        raise NotImplementedError

    def take_changes(self) -> tuple[dict[str, TargetCounts], bool]:
        """The targets changed since the last call, and whether any of them woke."""
        now = self.now()
        changes = {t: self.get(t, now) for t in self.changed}
        wake = bool(self.woken)
        self.changed.clear()
        self.woken.clear()
        return changes, wake


class Counters(TracksChanges):
    """In-flight, held and request counts per target key, with a set of changed targets."""

    __slots__ = (
        "_busy",
        "_clock",
        "_since",
        "changed",
        "held",
        "idle_since",
        "in_flight",
        "requests",
        "woken",
    )

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.in_flight: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.requests: dict[str, int] = {}
        self.idle_since: dict[str, float] = {}  # targets with nothing in flight, since when
        self._busy: dict[str, float] = {}  # request-seconds up to _since[target]
        self._since: dict[str, float] = {}
        self.changed: set[str] = set()
        self.woken: set[str] = set()

    def now(self) -> float:
        """The counters' clock (``idle_since`` is on it)."""
        return self._clock()

    def _advance(self, target: str, now: float) -> int:
        """Bring ``busy`` of ``target`` up to ``now``; returns its in-flight count."""
        n = self.in_flight.get(target, 0)
        if n:
            self._busy[target] += n * (now - self._since[target])
        self._since[target] = now
        return n

    def arrive(self, target: str) -> None:
        """A request for ``target`` was routed: it is in flight until :meth:`finish`."""
        now = self._clock()
        n = self._advance(target, now)
        self._busy.setdefault(target, 0.0)
        self.requests[target] = self.requests.get(target, 0) + 1
        self.in_flight[target] = n + 1
        self.idle_since.pop(target, None)
        self.held.setdefault(target, 0)
        self.changed.add(target)

    def hold(self, target: str) -> bool:
        """One more request of ``target`` is held; true when it is the first (a wake)."""
        n = self.held.get(target, 0)
        self.held[target] = n + 1
        self.changed.add(target)
        if n == 0:
            self.woken.add(target)
            return True
        return False

    def unhold(self, target: str) -> None:
        self.held[target] -= 1
        self.changed.add(target)

    def finish(self, target: str) -> None:
        now = self._clock()
        n = self._advance(target, now) - 1
        self.in_flight[target] = n
        if n == 0:
            self.idle_since[target] = now
        self.changed.add(target)

    def get(self, target: str, now: float | None = None) -> TargetCounts:
        n = self.in_flight.get(target, 0)
        busy = self._busy.get(target, 0.0)
        if n:
            busy += n * ((self._clock() if now is None else now) - self._since[target])
        return TargetCounts(
            n,
            self.held.get(target, 0),
            self.requests.get(target, 0),
            busy,
            self.idle_since.get(target),
        )

    def snapshot(self) -> dict[str, TargetCounts]:
        now = self._clock()
        return {t: self.get(t, now) for t in self.requests}
