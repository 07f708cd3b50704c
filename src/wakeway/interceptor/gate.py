"""The cold-start gate as a sans-I/O core: who is held, who is released, who expires.

It takes facts (an item, its target and backend keys, limits, a deadline, the current time) and
returns decisions; the shell owns the timers, the sockets and the responses. Items are opaque
hashable objects (the shell's per-request state). Held items are kept per backend key in one
insertion-ordered dict, so releasing a backend hands them back in arrival order, even when
several targets share that backend.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Held:
    """The item waits until ``deadline``. (Whether it is its target's first, the wake, the
    shell's counters say: they also see requests held again.)"""

    deadline: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """No room: answer 503 with ``Retry-After: retry_after`` and ``reason`` as the body."""

    scope: Literal["target", "global"]
    reason: str
    retry_after: int


Admission = Held | Rejected


@dataclass(slots=True)
class _Entry:
    target: str
    backend: str
    deadline: float


class GateCore(Generic[T]):
    """Bounded holding of requests for targets that have no ready endpoint."""

    def __init__(self, global_limit: int) -> None:
        _check_limit(global_limit)
        self.global_limit = global_limit
        self._entries: dict[T, _Entry] = {}
        self._by_backend: dict[str, dict[T, None]] = {}
        self._per_target: dict[str, int] = {}
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0

    # -- queries ----------------------------------------------------------------------------
    def held(self, target: str | None = None) -> int:
        if target is None:
            return len(self._entries)
        return self._per_target.get(target, 0)

    def __contains__(self, item: object) -> bool:
        return item in self._entries

    def backends(self) -> list[str]:
        """Backend keys that have at least one held item."""
        return list(self._by_backend)

    def holds_for(self, backend: str) -> bool:
        """Whether at least one item is held for ``backend``."""
        return backend in self._by_backend

    def next_deadline(self) -> float | None:
        """The earliest deadline of a held item (the shell sets one timer for it)."""
        heap = self._heap
        while heap and heap[0][2] not in self._entries:
            heapq.heappop(heap)
        while heap:
            deadline, _, item = heap[0]
            entry = self._entries.get(item)
            if entry is not None and entry.deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    # -- decisions --------------------------------------------------------------------------
    def admit(
        self, item: T, *, target: str, backend: str, limit: int, now: float, deadline: float
    ) -> Admission:
        """Hold ``item`` unless its target (``limit``) or the whole gate is full."""
        if item in self._entries:
            raise ValueError("item is already held")
        _check_limit(limit)
        count = self._per_target.get(target, 0)
        if count >= limit:
            reason = (
                f"{target} is not ready and already holds {count} waiting requests (limit {limit})"
            )
            return Rejected("target", reason, self._retry_after(backend, now))
        if len(self._entries) >= self.global_limit:
            reason = (
                f"{target} is not ready and the interceptor already holds "
                f"{len(self._entries)} waiting requests in all (limit {self.global_limit})"
            )
            return Rejected("global", reason, self._retry_after(None, now))
        self._entries[item] = _Entry(target, backend, deadline)
        self._by_backend.setdefault(backend, {})[item] = None
        self._per_target[target] = count + 1
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, item))
        return Held(deadline)

    def release(self, backend: str) -> list[T]:
        """Every item held for ``backend``, in arrival order; they are no longer held."""
        items = self._by_backend.pop(backend, None)
        if not items:
            return []
        out = list(items)
        for item in out:
            self._forget(item)  # its backend's index is gone already
        return out

    def release_target(self, target: str) -> list[T]:
        """Every item held for ``target``, in arrival order (to answer them with an error)."""
        if target not in self._per_target:
            return []
        out = [item for item, entry in self._entries.items() if entry.target == target]
        for item in out:
            self._forget(item)
        return out

    def cancel(self, item: T) -> bool:
        """Forget ``item`` (its client went away); false when it was not held."""
        if item not in self._entries:
            return False
        self._forget(item)
        return True

    def expire(self, now: float) -> list[T]:
        """Items whose deadline is at or before ``now``, earliest first; they are forgotten."""
        out: list[T] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, item = heapq.heappop(heap)
            entry = self._entries.get(item)
            if entry is not None and entry.deadline == deadline:
                self._forget(item)
                out.append(item)
        return out

    # -- internals --------------------------------------------------------------------------
    def _forget(self, item: T) -> None:
        entry = self._entries.pop(item)
        bucket = self._by_backend.get(entry.backend)
        if bucket is not None:
            del bucket[item]
            if not bucket:
                del self._by_backend[entry.backend]
        left = self._per_target[entry.target] - 1
        if left:
            self._per_target[entry.target] = left
        else:
            del self._per_target[entry.target]
        if not self._entries:
            self._heap.clear()

    def _retry_after(self, backend: str | None, now: float) -> int:
        # Room frees up at the latest when the earliest held request of that backend expires.
        bucket = self._by_backend.get(backend) if backend is not None else self._entries
        first = next(iter(bucket or ()), None)
        if first is None:
            return 1
        return max(1, min(60, math.ceil(self._entries[first].deadline - now)))


def _check_limit(limit: int) -> None:
    # A target that may hold nothing would never wake: its first held request is the signal.
    if limit < 1:
        raise ValueError(f"a hold limit must be at least 1, got {limit}")
