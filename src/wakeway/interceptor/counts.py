"""Per-target counters (a pure core) and the count-stream items built from them.

Counts are plain ints in dicts: one event loop needs no locks. A target appears once its first
request arrives and stays (``requests`` is monotonic). ``in_flight`` counts held plus forwarding
requests; ``held`` counts only the requests waiting at the cold-start gate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class TargetCounts:
    in_flight: int
    held: int
    requests: int

    def to_json(self) -> dict[str, int]:
        return {"inFlight": self.in_flight, "held": self.held, "requests": self.requests}


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


class Counters:
    """In-flight, held and request counts per target key, with a set of changed targets."""

    __slots__ = ("changed", "held", "in_flight", "requests", "woken")

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        self.held: dict[str, int] = {}
        self.requests: dict[str, int] = {}
        self.changed: set[str] = set()
        self.woken: set[str] = set()

    def arrive(self, target: str) -> None:
        """A request for ``target`` was routed: it is in flight until :meth:`finish`."""
        self.requests[target] = self.requests.get(target, 0) + 1
        self.in_flight[target] = self.in_flight.get(target, 0) + 1
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
        self.in_flight[target] -= 1
        self.changed.add(target)

    def get(self, target: str) -> TargetCounts:
        return TargetCounts(
            self.in_flight.get(target, 0), self.held.get(target, 0), self.requests.get(target, 0)
        )

    def snapshot(self) -> dict[str, TargetCounts]:
        return {t: self.get(t) for t in self.requests}

    def take_changes(self) -> tuple[dict[str, TargetCounts], bool]:
        """The targets changed since the last call, and whether any of them woke."""
        changes = {t: self.get(t) for t in self.changed}
        wake = bool(self.woken)
        self.changed.clear()
        self.woken.clear()
        return changes, wake
