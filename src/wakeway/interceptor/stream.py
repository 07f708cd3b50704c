"""The in-process count stream: a snapshot, then coalesced changes; wakes go out at once.

Each subscription has a bounded queue. When a slow subscriber's queue is full its backlog is
dropped and the next item it reads is a fresh snapshot, so memory stays bounded and a reader
never sees a wrong total (only fewer intermediate steps).
"""

from __future__ import annotations

import asyncio
from collections import deque

from .counts import CountUpdate, TracksChanges


class CountSubscription:
    """Async iterator of :class:`CountUpdate`; the first item is a snapshot."""

    def __init__(self, hub: CountHub, maxsize: int) -> None:
        self._hub = hub
        self._items: deque[CountUpdate] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._resync = False
        self._seq = 0

    def _offer(self, update: CountUpdate | None) -> None:
        if self._closed:
            return
        if update is None or len(self._items) >= self._maxsize:
            self._items.clear()
            self._resync = True
        else:
            self._items.append(update)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub._subs.discard(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> CountSubscription:
        return self

    async def __anext__(self) -> CountUpdate:
        while True:
            if self._resync:
                self._resync = False
                return CountUpdate("snapshot", self._next_seq(), self._hub.counters.snapshot())
            if self._items:
                item = self._items.popleft()
                return CountUpdate(item.kind, self._next_seq(), item.counts, item.wake)
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def get(self, within: float | None = None) -> CountUpdate:
        """The next item, or ``TimeoutError`` after ``within`` seconds."""
        async with asyncio.timeout(within):
            return await self.__anext__()


class CountHub:
    """Fans counter changes out to subscriptions, coalescing within ``coalesce`` seconds."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        counters: TracksChanges,
        coalesce: float,
        maxsize: int,
    ) -> None:
        self._loop = loop
        self.counters = counters
        self._coalesce = coalesce
        self._maxsize = maxsize
        self._subs: set[CountSubscription] = set()
        self._flush_handle: asyncio.Handle | None = None

    def subscribe(self) -> CountSubscription:
        sub = CountSubscription(self, self._maxsize)
        sub._resync = True  # first item: a snapshot
        self._subs.add(sub)
        return sub

    @property
    def active(self) -> bool:
        return bool(self._subs)

    def changed(self, wake: bool = False) -> None:
        """Counters changed; a wake (a target's first held request) is flushed immediately."""
        if not self._subs:
            self.counters.changed.clear()
            self.counters.woken.clear()
            return
        if wake:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_later(self._coalesce, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        changes, wake = self.counters.take_changes()
        if not changes:
            return
        update = CountUpdate("change", 0, changes, wake)
        for sub in list(self._subs):
            sub._offer(update)

    def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for sub in list(self._subs):
            sub.close()
