"""Route bindings for the reconcile shell: one routing table over every HTTPScaledObject,
HTTPRoute and ReferenceGrant, built once per change of those inputs instead of once per
reconcile (which made a pass over N objects cost N whole builds).

:class:`Bindings` is the pure part: one table's answers indexed by object key, so a reconcile
reads its own in O(1). :class:`BindingsCache` is the shell: ``changed()`` marks the inputs
changed; the next build waits a short debounce (at least as long as the previous build took,
so a stream of changes costs at most about half of the loop's time), snapshots the inputs on
the event loop and builds in a worker thread, so the loop keeps serving wakes and watches
meanwhile. ``current()`` returns bindings no older than the last ``changed()`` before the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from wakeway.model.httproute import HTTPRoute
from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.service import ReferenceGrant
from wakeway.routing import (
    BindingProblem,
    Conflict,
    InterceptorRef,
    RouteGrants,
    RouteIdentity,
    RoutingTable,
)

log = logging.getLogger("wakeway.operator")


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the routing table is built from, as one snapshot."""

    targets: Sequence[HTTPScaledObject]
    routes: Sequence[HTTPRoute]
    grants: Sequence[ReferenceGrant]


class Bindings:
    """One routing table's verdicts, indexed by HTTPScaledObject key (pure, immutable)."""

    __slots__ = ("_conflicts", "_problems", "table", "version")

    def __init__(self, version: int, table: RoutingTable) -> None:
        self.version = version
        self.table = table
        problems: dict[str, list[BindingProblem]] = {}
        for p in table.problems:
            problems.setdefault(p.target, []).append(p)
        conflicts: dict[str, list[Conflict]] = {}
        for c in table.conflicts:
            conflicts.setdefault(c.winner, []).append(c)
            if c.loser != c.winner:
                conflicts.setdefault(c.loser, []).append(c)
        self._problems: Mapping[str, tuple[BindingProblem, ...]] = MappingProxyType(
            {k: tuple(v) for k, v in problems.items()}
        )
        self._conflicts: Mapping[str, tuple[Conflict, ...]] = MappingProxyType(
            {k: tuple(v) for k, v in conflicts.items()}
        )

    def problems_of(self, key: str) -> tuple[BindingProblem, ...]:
        return self._problems.get(key, ())

    def conflicts_of(self, key: str) -> tuple[Conflict, ...]:
        return self._conflicts.get(key, ())

    def identities_of(self, key: str) -> dict[str, str]:
        return self.table.identities_of(key)


def build_bindings(
    version: int,
    inputs: Inputs,
    interceptor: InterceptorRef | None,
    identity: RouteIdentity | None,
) -> Bindings:
    """The bindings of ``inputs`` (pure: safe to run in a worker thread)."""
    table = RoutingTable(
        inputs.targets,
        inputs.routes,
        interceptor,
        RouteGrants.of(inputs.grants),
        identity=identity,
    )
    return Bindings(version, table)


class BindingsCache:
    def __init__(
        self,
        snapshot: Callable[[], Inputs],
        build: Callable[[int, Inputs], Bindings],
        *,
        debounce: float = 0.05,
        in_thread: bool = True,
    ) -> None:
        self._snapshot = snapshot
        self._build = build
        self.debounce = debounce
        self.in_thread = in_thread
        self.builds = 0  # how many tables were built
        self.last_build = 0.0  # seconds the last build took
        self._version = 0  # bumped by every changed()
        self._latest: Bindings | None = None
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._fresh = asyncio.Event()  # set (and replaced) after each build or failure

    @property
    def latest(self) -> Bindings | None:
        return self._latest

    def changed(self) -> None:
        """The inputs changed: build again (soon, once, however many changes come meanwhile)."""
        self._version += 1
        self._start()

    async def current(self) -> Bindings:
        """Bindings that include every change made before this call."""
        want = self._version
        while self._latest is None or self._latest.version < want:
            self._start()
            fresh = self._fresh
            await fresh.wait()
            if self._error is not None and (self._latest is None or self._latest.version < want):
                raise self._error
        return self._latest

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="bindings")

    def _stale(self) -> bool:
        return self._latest is None or self._latest.version < self._version

    async def _run(self) -> None:
        while self._stale():
            # Coalesce a burst of changes (a relist, a bulk apply) into one build.
            await asyncio.sleep(max(self.debounce, self.last_build))
            version = self._version
            inputs = self._snapshot()
            began = time.perf_counter()
            try:
                if self.in_thread:
                    bindings = await asyncio.to_thread(self._build, version, inputs)
                else:
                    bindings = self._build(version, inputs)
            except Exception as exc:
                log.exception("route bindings: the build failed")
                self._error = exc
                self._wake_waiters()
                return
            self.last_build = time.perf_counter() - began
            self._latest, self._error = bindings, None
            self.builds += 1
            log.debug("route bindings: %d objects in %.3f s", len(inputs.targets), self.last_build)
            self._wake_waiters()

    def _wake_waiters(self) -> None:
        fresh, self._fresh = self._fresh, asyncio.Event()
        fresh.set()
