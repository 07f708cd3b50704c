"""The proxy listener served by several processes (``workers`` > 1): the primary's side.

The primary process keeps everything that must be one: the admin port, the count stream, the
routing table and endpoint view (built once, from one set of informers or one configuration),
and the wake. It serves no proxy traffic itself. Each worker (:mod:`.worker`) is an
:class:`~.server.Interceptor` of its own, with its own event loop, on a listener that shares the
proxy address: its own ``SO_REUSEPORT`` socket, or one listening socket all of them inherit.

Primary and worker talk over one Unix socket pair per worker, in length-prefixed pickles (both
ends are this program, started by the primary: nothing else can write to the pair):

- primary -> worker: ``init`` (settings, listener), ``router`` (the table, pickled once for all
  workers, in a thread), ``endpoints``, ``fail``, ``metrics`` (a request), ``drain``;
- worker -> primary: ``ready``, ``router_ok``, ``counts`` (its own counts of the targets that
  changed, or all of them, with the targets it saw go cold), ``metrics`` (its metric
  families), ``bye``.

Counts stay exact because each worker sends its own absolute counts, never deltas: the primary
keeps the latest per worker and sums them (:class:`SummedCounts`). A worker that goes away
(drained, or died) is retired: its ``requests`` and ``busy`` stay in the sums (they are
monotonic), its ``inFlight`` and ``held`` are dropped, and a dead worker is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import socket
import struct
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.logs import JsonFormatter

from .counts import TargetCounts, TracksChanges
from .router import Router
from .settings import InterceptorSettings
from .stream import CountHub

log = logging.getLogger("wakeway.interceptor.workers")

FRAME = struct.Struct("!I")
WORKER_MODULE = "wakeway.interceptor.worker"
# The counts of one target as a worker sends them: in flight, held, requests, busy, idle since.
WireCounts = tuple[int, int, int, float, float | None]
ColdCallback = Callable[[HTTPScaledObject], object]
# A worker that lived less than this before dying is started again only after a backoff.
STEADY = 10.0


def frame(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME.pack(len(data)) + data


async def read_message(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next message; ``asyncio.IncompleteReadError`` when the other end is gone."""
    (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
    message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
    return message


def to_wire(counts: Mapping[str, TargetCounts]) -> dict[str, WireCounts]:
    return {k: (c.in_flight, c.held, c.requests, c.busy, c.idle_since) for k, c in counts.items()}


@dataclass(slots=True)
class _Reported:
    """One worker's last word on one target, and when (the shared monotonic clock)."""

    in_flight: int
    held: int
    requests: int
    busy: float
    idle_since: float | None
    at: float


class SummedCounts(TracksChanges):
    """The counts of every worker, summed: a :class:`~.counts.TracksChanges` the stream reads.

    ``busy`` of a worker with requests in flight is carried forward from its last report at
    its in-flight count (which cannot have changed since: a change is reported). ``idle_since``
    is the latest of the workers' (all on ``time.monotonic``, which is system-wide).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._workers: dict[int, dict[str, _Reported]] = {}
        self._retired: dict[str, tuple[int, float, float | None]] = {}
        self.changed: set[str] = set()
        self.woken: set[str] = set()

    def now(self) -> float:
        return self._clock()

    def _held(self, target: str) -> int:
        return sum(w[target].held for w in self._workers.values() if target in w)

    def apply(self, worker: int, kind: str, at: float, counts: Mapping[str, WireCounts]) -> None:
        """A worker's report: ``snapshot`` replaces all it said before, ``change`` some targets.
        A target whose summed held count goes from 0 to more is woken."""
        mine = self._workers.setdefault(worker, {})
        touched = set(counts)
        if kind == "snapshot":
            touched |= mine.keys()
        before = {t: self._held(t) for t in touched}
        if kind == "snapshot":
            mine.clear()
        for target, (in_flight, held, requests, busy, idle_since) in counts.items():
            mine[target] = _Reported(in_flight, held, requests, busy, idle_since, at)
        for target in touched:
            if before[target] == 0 and self._held(target) > 0:
                self.woken.add(target)
        self.changed |= touched

    def retire(self, worker: int) -> None:
        """``worker`` is gone: keep its monotonic figures, drop what it had in flight."""
        mine = self._workers.pop(worker, {})
        now = self._clock()
        for target, r in mine.items():
            requests, busy, idle = self._retired.get(target, (0, 0.0, None))
            busy += r.busy + r.in_flight * (now - r.at)
            ends = [t for t in (idle, r.idle_since if not r.in_flight else now) if t is not None]
            self._retired[target] = (requests + r.requests, busy, max(ends, default=None))
        self.changed |= mine.keys()

    def by_worker(self) -> dict[int, dict[str, tuple[int, int, int]]]:
        """In flight, held and requests per target as each live worker last reported them."""
        return {
            w: {t: (r.in_flight, r.held, r.requests) for t, r in mine.items()}
            for w, mine in self._workers.items()
        }

    def targets(self) -> set[str]:
        seen = set(self._retired)
        for mine in self._workers.values():
            seen |= mine.keys()
        return seen

    def get(self, target: str, now: float | None = None) -> TargetCounts:
        now = self._clock() if now is None else now
        requests, busy, idle = self._retired.get(target, (0, 0.0, None))
        in_flight = held = 0
        ends = [] if idle is None else [idle]
        for mine in self._workers.values():
            r = mine.get(target)
            if r is None:
                continue
            in_flight += r.in_flight
            held += r.held
            requests += r.requests
            busy += r.busy + r.in_flight * (now - r.at)
            if r.idle_since is not None:
                ends.append(r.idle_since)
        idle_since = max(ends, default=None) if not in_flight and requests else None
        return TargetCounts(in_flight, held, requests, busy, idle_since)

    def snapshot(self) -> dict[str, TargetCounts]:
        now = self._clock()
        return {t: self.get(t, now) for t in self.targets()}


def merge_families(per_worker: Sequence[Sequence[Metric]]) -> list[Metric]:
    """The workers' metric families as one process's: samples with the same name and labels
    are added up (counters, histograms, the in-flight gauges), except ``*_info``-like gauges
    that say the same in every worker (``wakeway_build_info``), which are taken once."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in per_worker:
        for family in families:
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            sums = values[family.name]
            once = family.name.endswith("_info") or family.name.endswith("build")
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if once:
                    sums[key] = sample.value
                else:
                    sums[key] = sums.get(key, 0.0) + sample.value
    for name, family in merged.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(merged.values())


class _Merged:
    """A collector that yields the families last merged from the workers."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class _Worker:
    """One worker process and its end of the pair."""

    def __init__(
        self,
        wid: int,
        proc: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.id = wid
        self.proc = proc
        self.reader = reader
        self.writer = writer
        self.started = time.monotonic()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.router_version = 0  # of the last routing table it has applied
        self.task: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)


def _log_format() -> tuple[str, str]:
    root = logging.getLogger()
    fmt = "text"
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        fmt = "json"
    return logging.getLevelName(root.getEffectiveLevel()), fmt


class WorkerGroup:
    """``n`` worker processes behind one proxy address, and the sum of their counts."""

    def __init__(
        self, settings: InterceptorSettings, n: int, cold_callbacks: list[ColdCallback]
    ) -> None:
        self.settings = settings
        self.n = n
        self._cold = cold_callbacks  # the owner's list, read when a worker reports a cold target
        self.counts = SummedCounts()
        loop = asyncio.get_running_loop()
        self.hub = CountHub(loop, self.counts, settings.counts_coalesce, settings.counts_queue_size)
        self.registry = CollectorRegistry(auto_describe=False)
        self._merged = _Merged()
        self.registry.register(self._merged)
        self.workers: dict[int, _Worker] = {}
        self._ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self.port = 0
        self._router: Router | None = None
        self._router_version = 0
        self._router_frame: bytes | None = None
        self._shipper: asyncio.Task[None] | None = None
        self._after_router: list[bytes] = []
        self._endpoints_frame: bytes | None = None
        self._metrics: dict[int, asyncio.Future[list[Metric]]] = {}
        self._step_waiters: list[asyncio.Future[None]] = []
        self._metric_ids = itertools.count(1)
        self.draining = False
        self.restarts = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the proxy address, start the workers, return once all of them listen."""
        s = self.settings
        family, _, _, _, addr = socket.getaddrinfo(
            s.listen_host, s.listen_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets made with it.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if s.workers_listener == "reuseport":
            # Bound, never listening: it holds the port (and picks it, for port 0) and joins
            # no accept queue; every worker listens on a socket of its own at this address.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(addr)
        else:
            sock.bind(addr)
            sock.listen(1024)
            sock.set_inheritable(True)
        self._listener = sock
        self.port = sock.getsockname()[1]
        try:
            workers = await asyncio.gather(*(self._spawn() for _ in range(self.n)))
            await asyncio.gather(*(w.ready for w in workers))
            if self._router is not None:  # as one process: routing from the first request
                await self.wait_in_step()
        except BaseException:
            await self.drain(0.0)
            raise

    async def _spawn(self) -> _Worker:
        assert self._listener is not None
        wid = next(self._ids)
        parent, child = socket.socketpair()
        fds = [child.fileno()]
        if self.settings.workers_listener == "reuseport":
            listener: tuple[Any, ...] = ("bind", self._listener.family, self.port)
        else:
            listener = ("fd", self._listener.fileno())
            fds.append(self._listener.fileno())
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                WORKER_MODULE,
                str(child.fileno()),
                pass_fds=fds,
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            child.close()
        reader, writer = await asyncio.open_connection(sock=parent)
        worker = _Worker(wid, proc, reader, writer)
        level, fmt = _log_format()
        worker.send(frame(("init", wid, self.settings, listener, level, fmt)))
        if self._router_frame is not None:
            worker.send(self._router_frame)
        if self._endpoints_frame is not None:
            worker.send(self._endpoints_frame)
        self.workers[wid] = worker
        worker.task = asyncio.create_task(self._serve(worker), name=f"wakeway-worker-{wid}")
        return worker

    async def _serve(self, worker: _Worker) -> None:
        """Read one worker's messages until it is gone; then retire it (and start another)."""
        try:
            while True:
                try:
                    message = await read_message(worker.reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                self._on_message(worker, message)
        finally:
            code = await worker.proc.wait()
            worker.writer.close()
            del self.workers[worker.id]
            self._check_step()  # the one it waited for may be this one
            self.counts.retire(worker.id)
            self.hub.changed()
            if not worker.ready.done():
                worker.ready.set_exception(
                    RuntimeError(f"interceptor worker {worker.id} exited ({code}) before listening")
                )
            if not self.draining and worker.ready.done() and not worker.ready.exception():
                lived = time.monotonic() - worker.started
                log.warning(
                    "interceptor worker %d (pid %d) exited with %s after %.1fs; starting another",
                    worker.id,
                    worker.proc.pid,
                    code,
                    lived,
                )
                self._restart(0.0 if lived >= STEADY else min(5.0, 0.1 * 2**self.restarts))

    def _restart(self, delay: float) -> None:
        async def again() -> None:
            if delay:
                await asyncio.sleep(delay)
            if not self.draining:
                self.restarts += 1
                await self._spawn()

        task = asyncio.create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "counts":
            _, which, at, counts, cold = message
            self.counts.apply(worker.id, which, at, counts)
            for target in cold:
                for callback in list(self._cold):
                    callback(target)
            self.hub.changed(wake=bool(self.counts.woken))
        elif kind == "ready":
            if not worker.ready.done():
                worker.ready.set_result(None)
        elif kind == "router_ok":
            worker.router_version = message[1]
            self._check_step()
        elif kind == "metrics":
            fut = self._metrics.get(message[1])
            if fut is not None and not fut.done():
                fut.set_result(message[2])

    async def drain(self, limit: float) -> None:
        """Every worker drains (held and in-flight requests finish, up to ``limit`` seconds)
        and exits; counts keep coming until the last one is gone."""
        self.draining = True
        for worker in self.workers.values():
            worker.send(frame(("drain", limit)))
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=limit + 5.0)
        for worker in list(self.workers.values()):
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
        if pending:
            await asyncio.wait(pending, timeout=5.0)
        for task in list(self._tasks):
            task.cancel()
        if self._shipper is not None:
            self._shipper.cancel()
        if self._listener is not None:
            self._listener.close()
        self.hub.flush()
        self.hub.close()

    # -- swap points ------------------------------------------------------------------------
    def set_router(self, router: Router | None) -> None:
        """Ship ``router`` to every worker: pickled once, in a thread; the newest wins."""
        self._router = router
        if router is None:
            return
        self._router_version += 1
        if self._shipper is None or self._shipper.done():
            self._shipper = asyncio.create_task(self._ship())

    async def _ship(self) -> None:
        while self._router is not None:
            router, version = self._router, self._router_version
            data = await asyncio.to_thread(pickle.dumps, router, pickle.HIGHEST_PROTOCOL)
            if router is not self._router:
                continue  # a newer one came while this was pickled
            self._router_frame = frame(("router", version, data))
            self._broadcast(self._router_frame)
            for item in self._after_router:
                self._broadcast(item)
            self._after_router.clear()
            return

    def set_endpoints(
        self,
        view: Mapping[str, Sequence[tuple[str, int]]],
        h2c: Collection[str],
        starting: Mapping[str, Sequence[tuple[str, int]]],
    ) -> None:
        """Ship the endpoint view (and the starting endpoints early probes try) to every
        worker; not queued behind a table being shipped: a new ready endpoint releases held
        requests."""
        self._endpoints_frame = frame(("endpoints", dict(view), frozenset(h2c), dict(starting)))
        self._broadcast(self._endpoints_frame)

    def fail_held(self, target: str, status: int, reason: str) -> int:
        """Every worker answers what it holds for ``target``; returns how many were held."""
        item = frame(("fail", target, status, reason))
        if self._shipper is not None and not self._shipper.done():
            self._after_router.append(item)  # after the table being shipped, as one process
        else:
            self._broadcast(item)
        return self.counts.get(target).held

    def _broadcast(self, data: bytes) -> None:
        for worker in self.workers.values():
            worker.send(data)

    @property
    def ready(self) -> bool:
        """Every worker listens and has a routing table."""
        workers = self.workers.values()
        return bool(workers) and all(w.router_version and w.ready.done() for w in workers)

    @property
    def in_step(self) -> bool:
        """Every worker has applied the latest routing table (a swap reaches the workers a
        moment after :meth:`set_router` returns: it is pickled in a thread first)."""
        workers = self.workers.values()
        return all(w.router_version == self._router_version for w in workers)

    def _check_step(self) -> None:
        if self.in_step:
            for fut in self._step_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._step_waiters.clear()

    async def wait_in_step(self) -> None:
        """Until every worker has applied the latest routing table."""
        while not self.in_step:
            fut = asyncio.get_running_loop().create_future()
            self._step_waiters.append(fut)
            await fut

    async def metrics_text(self, within: float = 2.0) -> bytes:
        """The workers' metrics, added up, in the Prometheus text format."""
        asked: list[asyncio.Future[list[Metric]]] = []
        loop = asyncio.get_running_loop()
        for worker in self.workers.values():
            mid = next(self._metric_ids)
            fut: asyncio.Future[list[Metric]] = loop.create_future()
            self._metrics[mid] = fut
            asked.append(fut)
            worker.send(frame(("metrics", mid)))
        try:
            if asked:
                await asyncio.wait(asked, timeout=within)
        finally:
            for mid in [m for m, f in self._metrics.items() if f in asked]:
                del self._metrics[mid]
        self._merged.families = merge_families([f.result() for f in asked if f.done()])
        return generate_latest(self.registry)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers.values()]
