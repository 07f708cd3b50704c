"""A de-duplicating work queue of object keys, in the manner of client-go's.

- A key waits in the queue at most once, however often it is added.
- A key being processed is never handed out again until :meth:`WorkQueue.done`; an add in the
  meantime marks it dirty, and ``done`` puts it back (so the newest state is always seen).
- Failures requeue with per-key exponential backoff, from ``retry_min`` doubling to
  ``retry_max``; :meth:`WorkQueue.forget` resets it after a success.
- Delayed adds (a requeue-after, a resync) keep one timer per key: the earliest wins.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class ShutDown(Exception):
    """The queue was shut down; workers stop."""


class WorkQueue:
    def __init__(
        self,
        retry_min: float = 0.1,
        retry_max: float = 60.0,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.retry_min = retry_min
        self.retry_max = retry_max
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # waiting in _queue, or to be requeued when done
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._ready = asyncio.Event()
        self._shutdown = False
        self._clock = clock

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[str]:
        return frozenset(self._processing)

    def add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._ready.set()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` after ``delay`` seconds; an earlier pending timer for it wins."""
        if delay <= 0:
            self.add(key)
            return
        if self._shutdown:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry_delay(self, key: str) -> float:
        """The backoff before the next retry of ``key``, given its failures so far."""
        failures = self._failures.get(key, 0)
        return float(min(self.retry_max, self.retry_min * (2 ** min(failures, 62))))

    def add_rate_limited(self, key: str) -> float:
        """Requeue ``key`` after its backoff and count the failure; returns the delay used."""
        delay = self.retry_delay(key)
        self._failures[key] = self._failures.get(key, 0) + 1
        self.add_after(key, delay)
        return delay

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        """Reset the backoff of ``key`` (after a successful reconcile)."""
        self._failures.pop(key, None)

    def try_get(self) -> str | None:
        """The next key to process, or None when none is waiting; call :meth:`done` after."""
        if self._shutdown:
            raise ShutDown
        if not self._queue:
            self._ready.clear()
            return None
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    async def get(self) -> str:
        while True:
            key = self.try_get()
            if key is not None:
                return key
            await self._ready.wait()

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            self._ready.set()

    def shutdown(self) -> None:
        self._shutdown = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._ready.set()
