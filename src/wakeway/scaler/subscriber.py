"""Count-stream subscribers: one aiohttp client per interceptor replica, reading ``/counts``.

Each replica has its own task, so a slow or dead replica never delays the others. A stream is
reopened, after a backoff that doubles up to a bound and carries jitter, when it ends, fails,
sends a line that does not parse, stays silent for ``stale_after`` (the interceptor sends
heartbeats well within it), or the aggregator asks for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aiohttp

from .live import LiveCounts
from .replicas import ReplicaSource
from .settings import ScalerSettings
from .wire import WireError, parse_line

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with jitter: ``min * 2**n`` capped at ``max``, times 1 +- jitter."""

    def __init__(
        self, minimum: float, maximum: float, jitter: float, rng: random.Random | None = None
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.jitter = jitter
        self._next = minimum
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._next = self.minimum

    def next(self) -> float:
        base = self._next
        self._next = min(self.maximum, base * 2)
        return base * (1 + self.jitter * self._rng.uniform(-1.0, 1.0))


class ReplicaSubscriber:
    """Keeps one replica's count stream open, feeding every line to ``live``."""

    def __init__(
        self,
        address: str,
        session: aiohttp.ClientSession,
        live: LiveCounts,
        settings: ScalerSettings,
    ) -> None:
        self.address = address
        self.url = f"http://{address}/counts"
        self._session = session
        self._live = live
        self._settings = settings
        self._backoff = Backoff(
            settings.reconnect_min, settings.reconnect_max, settings.reconnect_jitter
        )
        self.connects = 0
        self._failing = False

    async def run(self) -> None:
        while True:
            try:
                await self._stream()
            except (
                aiohttp.ClientError,
                aiohttp.http_exceptions.HttpProcessingError,  # e.g. a line over the limit
                TimeoutError,
                OSError,
                WireError,
                ValueError,
            ) as exc:
                # One warning per outage; the retries of the same outage go to debug.
                level = logging.DEBUG if self._failing else logging.WARNING
                log.log(level, "count stream %s: %s; retrying", self.address, _describe(exc))
                self._failing = True
            await asyncio.sleep(self._backoff.next())

    async def _stream(self) -> None:
        s = self._settings
        timeout = aiohttp.ClientTimeout(
            total=None, connect=s.connect_timeout, sock_read=s.stale_after
        )
        async with self._session.get(self.url, timeout=timeout) as resp:
            if resp.status != 200:
                raise WireError(f"HTTP {resp.status}")
            self.connects += 1
            content = resp.content
            while True:
                raw = await content.readline()
                if not raw:
                    log.info("count stream %s: closed by the interceptor", self.address)
                    return
                if not raw.strip():
                    continue
                line = parse_line(raw)
                if line.kind == "snapshot":
                    self._backoff.reset()
                    if self._failing:
                        log.info("count stream %s: connected", self.address)
                        self._failing = False
                if self._live.apply(self.address, line):
                    log.info("count stream %s: out of step; reopening", self.address)
                    return


class Subscribers:
    """One :class:`ReplicaSubscriber` task per address in the latest set of ``source``.

    A replica that leaves the set has its stream closed; its counts stand until the aggregator
    finds it stale, so a replica leaving does not make its targets look idle at once.
    """

    def __init__(self, source: ReplicaSource, live: LiveCounts, settings: ScalerSettings) -> None:
        self._source = source
        self._live = live
        self._settings = settings
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.subscribers: dict[str, ReplicaSubscriber] = {}

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(self._tasks)

    async def run(self) -> None:
        s = self._settings
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(
            connector=connector, read_bufsize=max(2**16, s.max_line_bytes // 2)
        ) as session:
            try:
                async for addresses in self._source.watch():
                    self._update(addresses, session)
            finally:
                await self._cancel(list(self._tasks))

    def _update(self, addresses: frozenset[str], session: aiohttp.ClientSession) -> None:
        gone = [a for a in self._tasks if a not in addresses]
        for address in gone:
            self._tasks.pop(address).cancel()
            self.subscribers.pop(address, None)
        for address in sorted(addresses - self._tasks.keys()):
            sub = ReplicaSubscriber(address, session, self._live, self._settings)
            self.subscribers[address] = sub
            self._tasks[address] = asyncio.create_task(sub.run(), name=f"counts {address}")
        if gone or addresses:
            log.info("interceptor replicas: %s", ", ".join(sorted(addresses)) or "none")

    async def _cancel(self, addresses: list[str]) -> None:
        tasks = [self._tasks.pop(a) for a in addresses if a in self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
