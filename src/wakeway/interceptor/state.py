"""State shared by every connection of one interceptor: routing, endpoints, gate, counts.

Everything here runs on the one event loop, so plain dicts and ints suffice. The router and the
endpoint view are immutable snapshots replaced by one assignment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.logs import event

from .counts import Counters
from .exchange import Exchange
from .gate import GateCore, Rejected
from .metrics import Metrics
from .policy import Admission, Held, Refused, TargetPolicy, resolve
from .probe import EarlyProbes
from .router import Router
from .settings import InterceptorSettings
from .stream import CountHub
from .upstream import Address, Pool, format_address
from .upstream_h2 import MixedPool

ColdCallback = Callable[[HTTPScaledObject], object]  # what it returns is ignored

log = logging.getLogger("wakeway.interceptor")

# A request refused because this interceptor is shutting down may be retried at once elsewhere.
SHUTDOWN_RETRY = (("Retry-After", "1"),)


class Connection(Protocol):
    """A client connection, as a drain sees it."""

    def drain(self) -> None: ...
    def abort(self) -> None: ...


class ProxyState:
    def __init__(
        self,
        settings: InterceptorSettings,
        loop: asyncio.AbstractEventLoop,
        cold_callbacks: list[ColdCallback],
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.router: Router | None = None
        self._policies: dict[str, TargetPolicy] = {}  # per target key, for this router
        self.endpoints: Mapping[str, Sequence[Address]] = {}  # ready, and found by a probe
        self._listed: Mapping[str, Sequence[Address]] = {}  # ready, as the last view said
        self.starting: Mapping[str, Sequence[Address]] = {}  # not ready yet, not terminating
        self._early: dict[str, Address] = {}  # backend -> a starting endpoint that accepted
        self.probes: EarlyProbes | None = None
        if settings.early_probe_interval is not None:
            self.probes = EarlyProbes(
                loop,
                settings.early_probe_interval,
                settings.connect_timeout,
                self._probe_wanted,
                self._probe_found,
            )
        self._rr: dict[str, int] = {}
        self._refused: dict[Address, float] = {}  # endpoint -> until when to skip it
        self._refused_timer: asyncio.TimerHandle | None = None
        self.gate: GateCore[Exchange] = GateCore(settings.max_held_total)
        self.counters = Counters()  # time.monotonic: uvloop's loop.time() counts whole ms
        self.hub = CountHub(
            loop, self.counters, settings.counts_coalesce, settings.counts_queue_size
        )
        self.metrics = Metrics(self.counters)
        self._pools = MixedPool(loop, settings.pool_size_per_upstream, settings.pool_idle_timeout)
        self.pool: Pool = self._pools
        self.h2_writes = self._pools.writes  # one write per HTTP/2 connection per read
        self.h2c: frozenset[str] = frozenset()  # backend keys whose endpoints speak h2c
        self.connections: set[Connection] = set()
        self.draining = False
        self.active = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._gate_timer: asyncio.TimerHandle | None = None
        self._cold_callbacks = cold_callbacks  # the owner's list: registered or removed any time

    # -- routing ----------------------------------------------------------------------------
    def set_router(self, router: Router | None) -> None:
        """Swap the routing table; per-target settings are resolved again, once each."""
        self.router = router
        self._policies = {}

    def policy_of(self, target: HTTPScaledObject) -> TargetPolicy:
        """``target``'s effective settings, merged once per routing-table swap."""
        policy = self._policies.get(target.key)
        if policy is None:
            policy = self._policies[target.key] = resolve(target, self.settings)
        return policy

    # -- endpoints --------------------------------------------------------------------------
    def pick(self, key: str) -> Address | None:
        """A ready endpoint of backend ``key``, round robin, skipping endpoints that refused a
        connection recently; None when there is none."""
        eps = self.endpoints.get(key)
        if not eps:
            return None
        i = self._rr.get(key, 0)
        self._rr[key] = i + 1
        if not self._refused:
            return eps[i % len(eps)]
        now = self.loop.time()
        for n in range(len(eps)):
            addr = eps[(i + n) % len(eps)]
            until = self._refused.get(addr)
            if until is None:
                return addr
            if until <= now:
                del self._refused[addr]
                return addr
        return None

    def refused(self, addr: Address) -> None:
        """``addr`` refused a connection: skip it for a while. When the while is over, requests
        held because of it are released again, even if the endpoint view did not change (a
        restarted pod can come back at the same address)."""
        until = self.loop.time() + self.settings.refused_endpoint_skip
        self._refused[addr] = until
        if self._refused_timer is None:
            self._refused_timer = self.loop.call_at(until, self._refused_expired)

    def _refused_expired(self) -> None:
        self._refused_timer = None
        now = self.loop.time()
        for addr in [a for a, until in self._refused.items() if until <= now]:
            del self._refused[addr]
        self.set_endpoints(self._listed)  # releases held requests whose backend has endpoints
        if self._refused:
            self._refused_timer = self.loop.call_at(
                min(self._refused.values()), self._refused_expired
            )

    def set_endpoints(
        self,
        view: Mapping[str, Sequence[Address]],
        h2c: Collection[str] | None = None,
        starting: Mapping[str, Sequence[Address]] | None = None,
    ) -> None:
        """Swap the endpoint view; ``h2c``: the backend keys forwarded over HTTP/2, and
        ``starting``: each backend's endpoints not ready yet (None: the same as before).

        A starting endpoint that accepted an early probe serves its backend until the view
        lists a ready endpoint for it, or no longer lists that one as starting."""
        self._listed = view
        if h2c is not None:
            self.h2c = frozenset(h2c)
        if starting is not None:
            self.starting = starting
        if self._early:
            self._early = {
                b: a
                for b, a in self._early.items()
                if not view.get(b) and a in self.starting.get(b, ())
            }
            view = {**view, **{b: (a,) for b, a in self._early.items()}}
        self.endpoints = view
        self._pools.h2c = frozenset(a for key in self.h2c for a in view.get(key, ()))
        for backend in self.gate.backends():
            if view.get(backend):
                released = self.gate.release(backend)
                now = self.loop.time()
                for ex in released:
                    self._unheld(ex, now)
                for ex in released:
                    ex.on_released()
        self._arm_gate_timer()
        if self.probes is not None:
            for backend in self.gate.backends():
                self.probes.start(backend)

    def _probe_wanted(self, backend: str) -> Sequence[Address]:
        """The endpoints to probe for ``backend``: its starting ones, while it has held
        requests and no ready endpoint."""
        if self.endpoints.get(backend) or not self.gate.holds_for(backend):
            return ()
        return self.starting.get(backend, ())

    def _probe_found(self, backend: str, addr: Address) -> None:
        if addr not in self.starting.get(backend, ()) or self._listed.get(backend):
            return  # the view moved on meanwhile: it decides
        log.info(
            "backend %s: starting endpoint %s accepted a connection before it was listed "
            "ready; forwarding to it",
            backend,
            format_address(addr),
            extra=event("early-probe", backend=backend),
        )
        self._early[backend] = addr
        self.set_endpoints(self._listed)

    # -- counts -----------------------------------------------------------------------------
    def arrive(self, ex: Exchange) -> None:
        self.active += 1
        if ex.exempt is None:  # a wake exclusion forwarded to an awake target is no activity
            self.counters.arrive(ex.tkey)
            self.hub.changed()

    def done(self, ex: Exchange) -> None:
        if ex.exempt is not None:
            self.metrics.exempt(
                ex.tkey, "passthrough" if ex.exempt.forward else ex.exempt.answer.kind
            )
        if ex.target is not None:
            self.active -= 1
            if ex.exempt is None:
                self.counters.finish(ex.tkey)
                self.hub.changed()
            if self.active == 0 and self._idle_waiters:
                for fut in self._idle_waiters:
                    if not fut.done():
                        fut.set_result(None)
                self._idle_waiters.clear()

    async def wait_idle(self) -> None:
        if self.active == 0:
            return
        fut = self.loop.create_future()
        self._idle_waiters.append(fut)
        await fut

    # -- cold-start gate --------------------------------------------------------------------
    def admit(self, ex: Exchange) -> Admission:
        """May ``ex`` wait at the gate, and until when? The exchange acts on the answer."""
        policy = ex.policy
        assert policy is not None
        if self.draining:
            return Refused(503, f"{ex.tkey} is not ready and this interceptor is shutting down", 1)
        now = self.loop.time()
        decision = self.gate.admit(
            ex,
            target=ex.tkey,
            backend=policy.backend_key,
            limit=policy.max_held,
            now=now,
            deadline=ex.hold_deadline or now + policy.hold_wait,
        )
        if isinstance(decision, Rejected):
            return Refused(503, decision.reason, decision.retry_after)
        return Held(decision.deadline)

    def held(self, ex: Exchange) -> None:
        """``ex`` now waits at the gate: count it, and on a target's first held request tell
        whoever wakes workloads."""
        target = ex.target
        assert target is not None
        first = self.counters.hold(ex.tkey)
        if first:
            log.info(
                "cold start %s: first request held", ex.tkey, extra=event("cold", target=ex.tkey)
            )
            self.metrics.cold_start(ex.tkey)
            for callback in list(self._cold_callbacks):
                callback(target)
        self.hub.changed(wake=first)
        if self.probes is not None:
            self.probes.start(ex.backend_key)
        timer = self._gate_timer
        if timer is None or timer.when() > ex.hold_deadline:
            self._arm_gate_timer()

    def cancel_hold(self, ex: Exchange) -> None:
        if self.gate.cancel(ex):
            self._unheld(ex, self.loop.time())

    def _unheld(self, ex: Exchange, now: float) -> None:
        self.counters.unhold(ex.tkey)
        self.metrics.cold_wait(ex.tkey, now - ex.held_since)
        self.hub.changed()

    def _arm_gate_timer(self) -> None:
        deadline = self.gate.next_deadline()
        timer = self._gate_timer
        if timer is not None:
            if deadline is not None and timer.when() == deadline:
                return
            timer.cancel()
            self._gate_timer = None
        if deadline is not None:
            self._gate_timer = self.loop.call_at(deadline, self._on_gate_timer)

    def _on_gate_timer(self) -> None:
        self._gate_timer = None
        now = self.loop.time()
        expired = self.gate.expire(now)
        for ex in expired:
            self._unheld(ex, now)
        for ex in expired:
            ex.on_expired()
        self._arm_gate_timer()

    def release_all_held(self, message: str) -> None:
        """Answer every held request 503 + Retry-After (used when a drain times out): another
        interceptor replica, or this one restarted, can serve the retry."""
        for backend in self.gate.backends():
            released = self.gate.release(backend)
            now = self.loop.time()
            for ex in released:
                self._unheld(ex, now)
            for ex in released:
                ex.respond(503, message, extra=SHUTDOWN_RETRY)
        self._arm_gate_timer()

    def fail_held(self, target: str, status: int, message: str) -> int:
        """Answer every request held for ``target`` with ``status`` and ``message``."""
        released = self.gate.release_target(target)
        now = self.loop.time()
        for ex in released:
            self._unheld(ex, now)
        for ex in released:
            ex.respond(status, message if message.endswith("\n") else message + "\n")
        self._arm_gate_timer()
        return len(released)

    def close(self) -> None:
        if self._gate_timer is not None:
            self._gate_timer.cancel()
            self._gate_timer = None
        if self._refused_timer is not None:
            self._refused_timer.cancel()
            self._refused_timer = None
        if self.probes is not None:
            self.probes.close()
        self.pool.close()
        self.hub.close()
