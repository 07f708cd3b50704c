"""A cheap resettable deadline: one loop timer per owner, re-armed lazily.

Arming and disarming only store a number; the loop timer is created at most once per period
and, when it fires early (the deadline moved later), re-schedules itself. That keeps timer
churn off the per-request path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    __slots__ = ("_callback", "_handle", "_loop", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self.when = 0.0

    def arm(self, seconds: float | None) -> None:
        if seconds is None:
            self.when = 0.0
            return
        when = self._loop.time() + seconds
        self.when = when
        handle = self._handle
        if handle is None:
            self._handle = self._loop.call_at(when, self._fire)
        elif handle.when() > when:
            handle.cancel()
            self._handle = self._loop.call_at(when, self._fire)

    def disarm(self) -> None:
        self.when = 0.0

    def cancel(self) -> None:
        self.when = 0.0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        when = self.when
        if not when:
            return
        if self._loop.time() < when:
            self._handle = self._loop.call_at(when, self._fire)
            return
        self.when = 0.0
        self._callback()
