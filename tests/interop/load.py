"""Bounded request loops to an interceptor on the harness namespace's loopback.

``sustain`` runs ``workers`` keep-alive connections, each sending one GET after another: closed
loop (the next request when the answer came, so ``workers`` requests are in flight whenever the
pod is slow) or paced to a total ``rate`` per second (a slot missed while requests were held is
skipped, never made up in a burst). Every loop ends at ``seconds``, after ``max_requests``, or
when ``stop`` is set, whichever comes first. It runs on a thread inside the namespace, so its
sockets are the namespace's.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.cluster.harness.cluster import Cluster

_REQUEST_TIMEOUT = 60.0  # a held request waits for a cold start, then must be answered


@dataclass(frozen=True)
class Load:
    port: int
    host: str
    workers: int
    seconds: float
    max_requests: int
    rate: float | None = None  # total requests per second; None: closed loop
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    began: float = 0.0  # time.monotonic()
    ended: float = 0.0
    longest: float = 0.0  # seconds, the slowest answer (a held request's wait included)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + len(self.errors)


async def sustain(cluster: Cluster, load: Load) -> Tally:
    """Runs ``load`` from inside the cluster's namespace; returns when every loop ended."""
    return await asyncio.wrap_future(cluster.netns.submit(lambda: asyncio.run(_run(load))))


async def _run(load: Load) -> Tally:
    tally = Tally(began=time.monotonic())
    deadline = tally.began + load.seconds
    budget = [load.max_requests]
    interval = load.workers / load.rate if load.rate else 0.0
    request = f"GET / HTTP/1.1\r\nHost: {load.host}\r\n\r\n".encode()

    async def worker(offset: float) -> None:
        slot = tally.began + offset - interval  # the first request goes at began + offset
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while budget[0] > 0 and not load.stop.is_set():
                if interval:
                    slot = max(slot + interval, time.monotonic())
                    await asyncio.sleep(slot - time.monotonic())
                if time.monotonic() >= deadline or load.stop.is_set():
                    return
                budget[0] -= 1
                began = time.monotonic()
                try:
                    if conn is None:
                        conn = await asyncio.open_connection("127.0.0.1", load.port)
                    async with asyncio.timeout(_REQUEST_TIMEOUT):
                        conn[1].write(request)
                        status, keep = await _response(conn[0])
                    tally.statuses[status] += 1
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                    tally.errors.append(f"{type(e).__name__}: {e}")
                    keep = False
                tally.longest = max(tally.longest, time.monotonic() - began)
                if not keep and conn is not None:
                    conn[1].close()
                    conn = None
        finally:
            if conn is not None:
                conn[1].close()

    workers = [worker(i * interval / load.workers) for i in range(load.workers)]
    await asyncio.gather(*workers)
    tally.ended = time.monotonic()
    return tally


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Reads one response (Content-Length framed, or up to EOF); (status, connection reusable)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
        return status, headers.get("connection", "").lower() != "close"
    with contextlib.suppress(asyncio.IncompleteReadError):
        await reader.read()
    return status, False
