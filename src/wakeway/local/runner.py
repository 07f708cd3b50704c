"""Local mode: interceptor, scaler and operator logic in one process, workloads as processes.

The interceptor holds requests for a workload that is not running; its count stream (the same
one the scaler reads in Kubernetes) tells this runner at once, the runner starts the process,
and once the readiness check passes it publishes the process's address as the ready endpoint,
which releases the held requests. When a workload has had nothing in flight for its
``scaledownPeriod`` its endpoint is withdrawn first (so new requests are held, not refused) and
then the process is stopped; a request that arrived meanwhile is served by the next start.

About 500 lines: the one shell of local mode (listeners, the count-driven control loop,
starting and stopping processes, reloads and the wake/sleep control), all acting on the same
slots; the decisions are in :mod:`wakeway.local.plan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wakeway.interceptor.counts import CountUpdate, TargetCounts
from wakeway.interceptor.server import Interceptor
from wakeway.interceptor.settings import InterceptorSettings
from wakeway.local.config import ConfigError, LocalConfig, load_config
from wakeway.local.control import add_control_routes
from wakeway.local.plan import (
    Action,
    Phase,
    WorkloadState,
    failures_after_exit,
    plan,
    restart_delay,
    warm_windows,
)
from wakeway.local.process import StartFailed, WorkloadProcess
from wakeway.model.local import LocalWorkload
from wakeway.model.logs import event
from wakeway.model.warm import WarmWindow
from wakeway.observe.debug import EndpointChanges, log_table_swap
from wakeway.routing import InterceptorRef, RoutingTable

log = logging.getLogger("wakeway.local")

# HTTPRoute rules reach local mode when a backendRef names this Service, in any namespace.
LOCAL_INTERCEPTOR = InterceptorRef(namespace=None, name="wakeway-interceptor")


@dataclass(slots=True)
class Slot:
    """What the runner knows of one workload."""

    workload: LocalWorkload
    phase: Phase = Phase.STOPPED
    process: WorkloadProcess | None = None
    idle_since: float | None = None
    stale: bool = False  # spec changed or removed on reload: replace or drop once idle
    removed: bool = False
    woken_at: float | None = None  # when the first request of this start was held
    cooldown_until: float = 0.0
    task: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    endpoint_keys: tuple[str, ...] = field(default_factory=tuple)
    targets: tuple[str, ...] = field(default_factory=tuple)
    scaledown_period: float = 0.0
    keep_warm: bool = False
    windows: tuple[WarmWindow, ...] = ()  # its targets' spec.warmWindows
    ready_at: float = 0.0  # when the running process became ready
    starts: int = 0  # successful starts, for logs and tests
    failures: int = 0  # failed starts and unasked exits in a row (restart backoff)
    not_before: float = 0.0  # no start before this time (restart backoff)
    last_wake: float | None = None  # wall-clock time it last became ready
    last_sleep: float | None = None  # wall-clock time it last stopped


class LocalRunner:
    def __init__(
        self,
        paths: Sequence[Path],
        settings: InterceptorSettings,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.paths = list(paths)
        self.settings = settings
        self.wall_clock = wall_clock  # what warm windows are read against
        self.config = load_config(self.paths)  # raises ConfigError before anything starts
        # The interceptor's admin port also serves local mode's own routes (wakeway.local.control).
        self.interceptor = Interceptor(
            settings, admin_routes=lambda app: add_control_routes(app, self)
        )
        self.routes_to = LOCAL_INTERCEPTOR
        self.slots: dict[str, Slot] = {}
        self._kick = asyncio.Event()
        self._stopping = False
        self._control_task: asyncio.Task[None] | None = None
        self._started_at = time.monotonic()
        self._table: RoutingTable | None = None
        self._endpoint_changes = EndpointChanges(log)
        self._apply_config(self.config)

    # --- configuration ---

    def _apply_config(self, config: LocalConfig) -> None:
        table = RoutingTable(config.scaled_objects, config.routes, LOCAL_INTERCEPTOR)
        for problem in table.problems:
            log.warning(
                "route binding: %s: %s (%s)", problem.target, problem.message, problem.reason
            )
        for conflict in table.conflicts:
            log.warning("conflict: %s: %s", conflict.loser, conflict.message)
        for key, workload in config.workloads.items():
            slot = self.slots.get(key)
            if slot is None:
                self.slots[key] = Slot(workload)
            elif slot.workload != workload:
                slot.stale = slot.phase is not Phase.STOPPED
                slot.workload = workload
            slot = self.slots[key]
            slot.removed = False
        for key, slot in self.slots.items():
            if key not in config.workloads:
                slot.removed = True
                slot.stale = slot.phase is not Phase.STOPPED
                if slot.phase is Phase.STARTING and slot.task is not None:
                    slot.task.cancel()  # nothing will route to it: kill it, do not wait
        for slot in self.slots.values():
            targets = [
                so for so in config.scaled_objects if config.workload_of(so) == slot.workload
            ]
            slot.targets = tuple(so.key for so in targets)
            keys = [so.backend.key(so.namespace) for so in targets]
            keys += [
                so.failover.backend.key(so.namespace)
                for so in config.scaled_objects
                if so.failover is not None
                and f"{so.namespace}/{so.failover.backend.service}" == slot.workload.key
            ]
            slot.endpoint_keys = tuple(dict.fromkeys(keys))
            slot.scaledown_period = float(max((so.scaledown_period for so in targets), default=0))
            slot.keep_warm = any(so.min_replicas >= 1 for so in targets)
            slot.windows = tuple(w for so in targets for w in so.warm_windows)
            slot.cooldown_until = self._started_at + max(
                (so.initial_cooldown_period for so in targets), default=0
            )
        self.config = config
        self.interceptor.set_router(table)
        log_table_swap(log, self._table, table)
        self._table = table
        self._publish_endpoints()

    def reload(self) -> bool:
        """Re-read the files; on any problem keep the running configuration and say why."""
        try:
            config = load_config(self.paths)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:")
            for problem in exc.problems:
                log.error("  %s", problem)
            return False
        before = {so.key for so in self.config.scaled_objects}
        self._apply_config(config)
        for key in sorted(before - {so.key for so in config.scaled_objects}):
            # Requests held for a target that is gone would only wait for their deadline.
            self.interceptor.fail_held(
                key, 503, f"{key} was removed from the configuration while this request waited"
            )
        log.info(
            "reloaded: %d HTTPScaledObjects, %d HTTPRoutes, %d LocalWorkloads",
            len(config.scaled_objects),
            len(config.routes),
            len(config.workloads),
        )
        self._kick.set()
        return True

    # --- endpoints ---

    def _publish_endpoints(self) -> None:
        view: dict[str, list[tuple[str, int]]] = {}
        h2c: set[str] = set()  # backends of workloads that speak HTTP/2 (spec.appProtocol)
        for slot in self.slots.values():
            if slot.workload.h2c:
                h2c.update(slot.endpoint_keys)
            if slot.phase is Phase.READY and slot.process is not None:
                for key in slot.endpoint_keys:
                    view.setdefault(key, []).append((slot.process.host, slot.process.port))
        self._endpoint_changes.swapped(view)  # logged before it releases held requests
        self.interceptor.set_endpoints(view, h2c)

    # --- control loop ---

    async def start(self) -> None:
        """Listen, and begin acting on counts (workloads with replicas.min >= 1 start now)."""
        await self.interceptor.start()
        s, i = self.settings, self.interceptor
        c = self.config
        log.info(
            "local mode listening on %s:%d, admin on %s:%d; %d HTTPScaledObjects, "
            "%d HTTPRoutes, %d LocalWorkloads; access log %s",
            s.listen_host,
            i.proxy_port,
            s.admin_host,
            i.admin_port,
            len(c.scaled_objects),
            len(c.routes),
            len(c.workloads),
            "on" if s.access_log else "off",
            extra=event(
                "listening",
                host=s.listen_host,
                port=i.proxy_port,
                admin_host=s.admin_host,
                admin_port=i.admin_port,
            ),
        )
        self._control_task = asyncio.create_task(self._control(), name="wakeway-local-control")

    async def stop(self) -> None:
        """Drain the interceptor (held and in-flight requests finish), then stop every process."""
        self._stopping = True
        if self._control_task is not None:
            self._control_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._control_task
        await self.interceptor.drain_and_stop()
        await self._stop_all()
        log.info("local mode stopped")

    # --- control (wakeway wake / sleep) ---

    def slot_of(self, workload_key: str) -> Slot | None:
        return self.slots.get(workload_key)

    def counts(self) -> dict[str, TargetCounts]:
        return self.interceptor.counts()

    def wake(self, workload_key: str) -> str:
        """Start the workload now, as a first request would; it sleeps again after its
        scaledownPeriod without requests."""
        slot = self.slots[workload_key]
        if slot.phase is not Phase.STOPPED:
            return f"already {slot.phase.value}"
        slot.phase = Phase.STARTING
        slot.woken_at = time.monotonic()
        slot.not_before = 0.0
        slot.task = asyncio.create_task(self._start(slot))
        return "starting its workload"

    def sleep(self, workload_key: str) -> str | None:
        """Stop the workload now; why not, when it may not be."""
        slot = self.slots[workload_key]
        if slot.phase is Phase.STOPPED or slot.phase is Phase.STOPPING:
            return None
        if slot.keep_warm or warm_windows(slot.windows, self.wall_clock(), 0.0).in_force:
            return "replicas.min or a warm window keeps it awake; it would start again at once"
        busy = self._observe(time.monotonic())[workload_key]
        if busy:
            return f"{busy} request(s) in flight; it sleeps after its scaledownPeriod"
        if slot.phase is Phase.STARTING:
            return "it is starting; ask again once it is ready"
        self._begin_stop(slot, reason="asked")
        return None

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _control(self) -> None:
        sub = self.interceptor.subscribe()
        reader = asyncio.create_task(self._read_counts(sub))
        try:
            while True:
                recheck = self._reconcile()
                timeout = None if recheck is None else max(0.0, recheck - time.monotonic())
                self._kick.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._kick.wait()
        finally:
            reader.cancel()
            sub.close()

    async def _read_counts(self, sub: AsyncIterator[CountUpdate]) -> None:
        # The stream is the wake-up signal; the values themselves are read live in _reconcile,
        # which runs in the interceptor's own process and event loop.
        async for _update in sub:
            self._kick.set()

    def _observe(self, now: float) -> dict[str, int]:
        """In-flight per workload from the live counters; tracks idle and wake times.

        A workload is idle since the later of its start and the end of its last request, as the
        counters recorded it: a request that began and ended between two looks still counts
        (sampling ``in_flight`` alone would miss it, and steady short requests would look idle).
        """
        counts = self.interceptor.counts()
        lag = self.interceptor.clock() - now  # the counters' clock minus ours
        busy: dict[str, int] = {}
        for key, slot in self.slots.items():
            seen = [counts[t] for t in slot.targets if t in counts]
            n = sum(c.in_flight for c in seen)
            busy[key] = n
            if n:
                slot.idle_since = None
                if slot.phase is Phase.STOPPED and slot.woken_at is None:
                    slot.woken_at = now
            elif slot.phase is Phase.READY:
                ends = [c.idle_since - lag for c in seen if c.idle_since is not None]
                slot.idle_since = max([slot.ready_at, *ends])
        return busy

    def _reconcile(self) -> float | None:
        """Act on every workload; the earliest time a decision may change by itself."""
        if self._stopping:
            return None
        now = time.monotonic()
        wall = self.wall_clock()
        busy = self._observe(now)
        recheck: float | None = None
        for key, slot in list(self.slots.items()):
            if slot.removed and slot.phase is Phase.STOPPED:
                del self.slots[key]
                continue
            warm = warm_windows(slot.windows, wall, now)
            state = WorkloadState(
                phase=slot.phase,
                in_flight=busy[key],
                idle_since=slot.idle_since,
                scaledown_period=slot.scaledown_period,
                keep_warm=(slot.keep_warm or warm.in_force) and not slot.removed,
                cooldown_until=slot.cooldown_until,
                stale=slot.stale,
                not_before=slot.not_before,
            )
            decision = plan(state, now)
            if decision.action is Action.START and not slot.removed:
                slot.phase = Phase.STARTING
                slot.task = asyncio.create_task(self._start(slot))
            elif decision.action is Action.STOP:
                self._begin_stop(slot, reason="replaced" if slot.stale else "idle")
            for at in (decision.recheck_at, warm.recheck_at):
                if at is not None:
                    recheck = at if recheck is None else min(recheck, at)
        return recheck

    async def _start(self, slot: Slot) -> None:
        workload = slot.workload
        process = WorkloadProcess(workload)
        woken_at = slot.woken_at or time.monotonic()
        try:
            started = await process.start()
        except asyncio.CancelledError:
            # Removed by a reload, or local mode is stopping; the start killed its process.
            slot.phase = Phase.STOPPED
            slot.woken_at = None
            self._kick.set()
            raise
        except Exception as exc:  # StartFailed, or a bug: either way never stuck STARTING
            why = str(exc) if isinstance(exc, StartFailed) else f"{type(exc).__name__}: {exc}"
            self._start_failed(slot, why)
            return
        slot.process = process
        slot.starts += 1
        slot.phase = Phase.READY
        # A reload during the start changed or removed it: replace it once idle.
        slot.stale = slot.removed or slot.workload != workload
        slot.idle_since = None
        slot.ready_at = time.monotonic()
        slot.last_wake = self.wall_clock()
        self._publish_endpoints()
        waited = time.monotonic() - woken_at
        log.info(
            "wake %s: pid %d on %s:%d ready in %.3fs; first request waited %.3fs",
            workload.key,
            started.pid,
            process.host,
            started.port,
            started.seconds,
            waited,
            extra=event(
                "wake",
                workload=workload.key,
                pid=started.pid,
                port=started.port,
                ready_s=started.seconds,
                waited_s=waited,
            ),
        )
        slot.woken_at = None
        slot.watcher = asyncio.create_task(self._watch(slot, process))
        self._kick.set()

    def _start_failed(self, slot: Slot, why: str) -> None:
        key = slot.workload.key
        delay = self._back_off(slot, slot.failures + 1)
        log.error(
            "wake %s failed: %s (%d in a row; next start in %.1fs at the earliest)",
            key,
            why,
            slot.failures,
            delay,
        )
        slot.phase = Phase.STOPPED
        slot.woken_at = None
        for target in slot.targets:
            self.interceptor.fail_held(target, 502, f"workload {key} failed to start: {why}")
        self._kick.set()

    def _back_off(self, slot: Slot, failures: int) -> float:
        """Record ``failures`` in a row; the delay before the next start."""
        slot.failures = failures
        delay = restart_delay(failures)
        slot.not_before = time.monotonic() + delay
        return delay

    async def _watch(self, slot: Slot, process: WorkloadProcess) -> None:
        code = await process.wait()
        if slot.process is not process or slot.phase is not Phase.READY:
            return  # stopped on purpose
        ran_for = time.monotonic() - slot.ready_at
        delay = self._back_off(slot, failures_after_exit(slot.failures, ran_for))
        log.error(
            "workload %s exited unexpectedly with code %d after %.1fs ready "
            "(%d in a row; next start in %.1fs at the earliest)",
            slot.workload.key,
            code,
            ran_for,
            slot.failures,
            delay,
        )
        slot.process = None
        slot.phase = Phase.STOPPED
        slot.idle_since = None
        self._publish_endpoints()
        self._kick.set()

    def _begin_stop(self, slot: Slot, reason: str) -> None:
        process = slot.process
        if process is None:
            slot.phase = Phase.STOPPED
            return
        # Withdraw the endpoint first: from here on new requests are held for the next start.
        slot.phase = Phase.STOPPING
        self._publish_endpoints()
        # Same event-loop step: nothing can have been forwarded in between, so a non-zero live
        # count means a request got there first; keep the process for it.
        live = self._observe(time.monotonic())[slot.workload.key]
        if live:
            slot.phase = Phase.READY
            self._publish_endpoints()
            return
        idle_for = 0.0 if slot.idle_since is None else time.monotonic() - slot.idle_since
        slot.task = asyncio.create_task(self._stop(slot, process, reason, idle_for))

    async def _stop(
        self, slot: Slot, process: WorkloadProcess, reason: str, idle_for: float
    ) -> None:
        began = time.monotonic()
        how = await process.stop()
        slot.process = None
        slot.phase = Phase.STOPPED
        slot.idle_since = None
        slot.failures = 0  # it ended because it was asked to
        slot.last_sleep = self.wall_clock()
        slot.not_before = 0.0
        stopped = time.monotonic() - began
        log.info(
            "sleep %s: %s, idle for %.1fs; stopped in %.3fs (%s)",
            slot.workload.key,
            reason,
            idle_for,
            stopped,
            how,
            extra=event(
                "sleep",
                workload=slot.workload.key,
                reason=reason,
                idle_s=idle_for,
                stop_s=stopped,
                how=how,
            ),
        )
        self._kick.set()

    async def _stop_all(self) -> None:
        stops = []
        cancelled = []
        for slot in self.slots.values():
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()  # a start in progress kills its process when cancelled
                cancelled.append(slot.task)
            if slot.watcher is not None:
                slot.watcher.cancel()
            if slot.process is not None:
                stops.append(slot.process.stop())
        await asyncio.gather(*cancelled, *stops, return_exceptions=True)


async def run_local(paths: Sequence[Path], settings: InterceptorSettings) -> int:
    """Run until SIGINT or SIGTERM; SIGHUP reloads the files."""
    try:
        runner = LocalRunner(paths, settings)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        log.error("configuration has %d problem(s); nothing was started", len(exc.problems))
        return 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGHUP, runner.reload)
    try:
        await runner.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0
