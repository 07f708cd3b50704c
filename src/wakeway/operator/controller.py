"""The reconcile shell: informers feed a de-duplicating work queue; each key is reconciled by
reading the caches (and the workload's /scale), calling :func:`~wakeway.operator.plan.plan`, and
applying its effects idempotently. Nothing here decides anything.

Over 500 lines because it is the one place where the operator meets the API: the informers and
what each event re-queues, the resync, the wake fast path and applying a plan share the caches
and the queue, and splitting them would pass those around instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Protocol

from wakeway.kube import Forbidden, Informer, Kube, KubeError, NotFound
from wakeway.kube.resources import (
    HTTPROUTES,
    HTTPSCALEDOBJECTS,
    INTERCEPTORROUTES,
    REFERENCEGRANTS,
    SCALEDOBJECTS,
    SERVICES,
    workload_resource,
)
from wakeway.model.conditions import (
    NO_SCALE_SUBRESOURCE,
    WORKLOAD_FORBIDDEN,
    WORKLOAD_KIND_UNKNOWN,
    WORKLOAD_NOT_FOUND,
    rebase_status,
)
from wakeway.model.httproute import HTTPRoute, parse_httproute
from wakeway.model.httpso import API_VERSION, KIND, HTTPScaledObject
from wakeway.model.interceptorroute import parse_interceptorroute
from wakeway.model.logs import event
from wakeway.model.service import ReferenceGrant, Service, parse_reference_grant, parse_service
from wakeway.operator.bindings import Bindings, BindingsCache, Inputs, build_bindings
from wakeway.operator.dependents import Dependents
from wakeway.operator.objects import (
    ScaledObjectView,
    Tracked,
    parse_scaled_object,
    parse_tracked,
)
from wakeway.operator.plan import (
    InvalidSpec,
    Mode,
    Observed,
    Plan,
    Policy,
    Problem,
    plan,
    plan_removal,
    timestamp,
)
from wakeway.operator.routestatus import plan_route_status
from wakeway.operator.routewiring import RouteWiring
from wakeway.operator.scaling import Activity, Recommendation
from wakeway.operator.settings import OperatorSettings
from wakeway.operator.stats import OperatorStats
from wakeway.operator.workqueue import ShutDown, WorkQueue
from wakeway.routing import InterceptorRef, RouteIdentity

log = logging.getLogger("wakeway.operator")

ROUTE_KEY = "InterceptorRoute:"
"""Queue keys of InterceptorRoutes start with this (their status is all the operator writes)."""

FIRST_ANSWER_WAIT = 5.0
"""Seconds a pass waits for a new StreamIsActive's first answer before reporting no scaler."""

FORBIDDEN_CONFIRM = 3.0
"""Seconds a 403 on /scale must last before it is reported as WorkloadForbidden (which makes
the interceptors answer held requests 503 at once): a restarted API server answers 403 until
its RBAC caches are in, about a second. Until then the pass fails and is retried."""


class ScalerLink(Protocol):
    """What standalone mode needs from the scaler (see :mod:`wakeway.operator.scalerlink`)."""

    def activity(self, httpso: HTTPScaledObject, *, metrics: bool = True) -> Activity:
        """The latest word on ``httpso``; subscribes on first use (and when its metric changes).
        ``metrics``: poll its metric too (only worth it with replicas above zero)."""
        ...

    def forget(self, key: str) -> None: ...


async def detect_mode(kube: Kube, setting: str) -> Mode:
    if setting in ("keda", "standalone"):
        return setting  # type: ignore[return-value]
    keda = await kube.has_resource("keda.sh", "v1alpha1", "scaledobjects")
    return "keda" if keda else "standalone"


@dataclass(slots=True)
class _Pass:
    """Keys enqueued together (at start, by a resync), to log when the last one is done."""

    reason: str
    began: float
    pending: set[str]
    objects: int = field(init=False)

    def __post_init__(self) -> None:
        self.objects = len(self.pending)


class Controller:
    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        mode: Mode,
        scaler: ScalerLink | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode == "standalone" and scaler is None:
            raise ValueError("standalone mode needs a scaler link")
        self.kube = kube
        self.settings = settings
        self.mode: Mode = mode
        self.scaler = scaler
        self.clock = clock
        self.policy = Policy(
            settings.scaler_address,
            settings.scale_down_stabilization,
            active_hold=settings.active_condition_hold,
        )
        ns = settings.namespace or None
        self.queue = WorkQueue(settings.retry_min, settings.retry_max)
        self.httpsos: Informer[Tracked] = Informer(
            kube, HTTPSCALEDOBJECTS, parse_tracked, namespace=ns
        )
        self.routes: Informer[HTTPRoute] = Informer(kube, HTTPROUTES, parse_httproute, namespace=ns)
        self.services: Informer[Service] = Informer(kube, SERVICES, parse_service, namespace=ns)
        self.grants: Informer[ReferenceGrant] = Informer(
            kube, REFERENCEGRANTS, parse_reference_grant, namespace=ns
        )
        # InterceptorRoutes (their CRD may be missing: then there are none).
        self.irs: Informer[HTTPScaledObject] = Informer(
            kube, INTERCEPTORROUTES, parse_interceptorroute, namespace=ns, optional=True
        )
        self.scaledobjects: Informer[ScaledObjectView] | None = None
        if mode == "keda":
            self.scaledobjects = Informer(kube, SCALEDOBJECTS, parse_scaled_object, namespace=ns)
        self.interceptor = InterceptorRef(*settings.interceptor_service)
        key = settings.route_identity_key
        self.identity = RouteIdentity(key) if key else None
        self.histories: dict[str, tuple[Recommendation, ...]] = {}
        # What each object depends on, so an event finds its objects without a scan; and the
        # route bindings, built once per change of their inputs (as last seen, per key).
        self.dependents = Dependents()
        self.bindings = BindingsCache(
            self._inputs, self._build_bindings, debounce=settings.bindings_debounce
        )
        # Opted-in HTTPRoutes get their identity written into their bound rules.
        self.wiring = RouteWiring(kube, self.routes, self.bindings, self.identity)
        self._inputs_seen: dict[str, object] = {}
        self._services_by_ns: dict[str, dict[str, Service]] = {}
        # The last /scale read per key: whether it found the workload, and when (monotonic);
        # a resync reads again only what is due (see _due).
        self._scale_read: dict[str, tuple[bool, float]] = {}
        self._passes: list[_Pass] = []
        self._echoes: dict[str, dict[str, Any]] = {}  # the status each key's last write sent
        self._stream_waits: dict[str, float] = {}  # see _first_answer_pending
        self._forbidden_since: dict[str, float] = {}  # first 403 on /scale per key (monotonic)
        self.reconciles = 0
        self.stats = OperatorStats()
        self.status_writes = 0
        self.resyncs = 0
        # Standalone wake fast path: objects whose last pass left them at zero, and how far to
        # wake them; and when a fast wake happened that no pass has recorded yet.
        self._wake_to: dict[str, int] = {}
        self._woken_at: dict[str, float] = {}
        self._wakes: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def informers(self) -> list[Informer[Any]]:
        out: list[Informer[Any]] = [
            self.httpsos,
            self.irs,
            self.routes,
            self.services,
            self.grants,
        ]
        if self.scaledobjects is not None:
            out.append(self.scaledobjects)
        return out

    # --- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        self.kube.on_reconnect(self._api_back)
        self.httpsos.add_handler(self._httpso_changed)
        self.routes.add_handler(self._route_changed)
        self.services.add_handler(self._service_changed)
        self.grants.add_handler(self._grant_changed)
        self.irs.add_handler(lambda key: self.queue.add(ROUTE_KEY + key))
        if self.scaledobjects is not None:
            self.scaledobjects.add_handler(self.queue.add)
        for informer in self.informers:
            self._tasks.append(informer.start())
        try:
            await asyncio.gather(*(i.synced.wait() for i in self.informers))
            log.info("operator: caches synced (%s mode)", self.mode)
            self.ready.set()
            self._begin_pass("start", [*self.httpsos.items(), *self._route_keys()])
            workers = [
                asyncio.create_task(self._worker(), name=f"reconcile-{i}")
                for i in range(self.settings.workers)
            ]
            self._tasks.extend(workers)
            self._tasks.append(asyncio.create_task(self._resync(), name="resync"))
            self._tasks.append(asyncio.create_task(self.wiring.run(), name="route-wiring"))
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def stop(self) -> None:
        self.queue.shutdown()
        await self.bindings.close()
        tasks, self._tasks = self._tasks, [*self._wakes]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ShutDown):
                await task

    def wake(self, key: str) -> bool:
        """The scaler turned ``key`` active: if its last pass left it at zero, scale it now, in
        one conditional write with no read first, and poke a pass (for status and Events) once
        it is done. True when it took the wake on."""
        replicas = self._wake_to.pop(key, None)
        cached = self.httpsos.get(key)
        if replicas is None or cached is None or cached.value is None:
            return False
        task = asyncio.create_task(self._wake(key, cached.value.httpso, replicas))
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)
        return True

    async def _wake(self, key: str, httpso: HTTPScaledObject, replicas: int) -> None:
        t = httpso.scale_target
        began = time.monotonic()
        try:
            done = await self.kube.scale_from_zero(
                workload_resource(t.api_version, t.kind), httpso.namespace, t.name, replicas
            )
        except KubeError as exc:
            log.warning("%s: waking %s %s failed: %s", key, t.kind, t.name, exc)
            done = False
        self.stats.woke(done)
        if done:
            self._woken_at[key] = self.clock()
            write = time.monotonic() - began
            log.info(
                "%s: woke %s %s to %d (write %.1f ms)",
                key,
                t.kind,
                t.name,
                replicas,
                write * 1000,
                extra=event(
                    "woken", target=key, replicas=replicas, sent=began, write_ms=write * 1000
                ),
            )
        self.poke(key)

    def poke(self, key: str) -> None:
        """Reconcile ``key`` soon (the scaler link calls this when what it knows changes)."""
        self.queue.add(key)

    async def _resync(self) -> None:
        # Watches say when an object, Service, route or grant changes, and requeue timers when
        # time alone matters; what nothing tells us is the workload (only /scale is readable):
        # it is read again every workload_refresh, or every resync while it was not found.
        while True:
            await asyncio.sleep(self.settings.resync)
            now = time.monotonic()
            self._begin_pass("resync", [k for k in self.httpsos.items() if self._due(k, now)])
            self.resyncs += 1

    def _due(self, key: str, now: float) -> bool:
        read = self._scale_read.get(key)
        if read is None:
            return False  # never passed yet: it is queued already (start, or its own event)
        found, at = read
        return not found or now - at >= self.settings.workload_refresh

    def _begin_pass(self, reason: str, keys: list[str]) -> None:
        """Reconcile ``keys``; once each was, log how long the whole pass took."""
        if keys:
            self._passes.append(_Pass(reason, time.monotonic(), set(keys)))
        for key in keys:
            self.queue.add(key)

    def _passed(self, key: str) -> None:
        for p in list(self._passes):
            p.pending.discard(key)
            if not p.pending:
                self._passes.remove(p)
                took = time.monotonic() - p.began
                log.info(
                    "operator: %s pass over %d objects in %.2f s",
                    p.reason,
                    p.objects,
                    took,
                    extra=event("pass", reason=p.reason, objects=p.objects, seconds=took),
                )

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            began = time.monotonic()
            try:
                requeue = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.reconciled(time.monotonic() - began, exc)
                delay = self.queue.add_rate_limited(key)
                level = logging.WARNING if isinstance(exc, KubeError) else logging.ERROR
                log.log(level, "reconcile %s failed (retry in %.1fs): %s", key, delay, exc)
            else:
                self.stats.reconciled(time.monotonic() - began)
                self.queue.forget(key)
                if requeue is not None:
                    self.queue.add_after(key, max(requeue, 0.05))
            finally:
                self.queue.done(key)
                if self._passes:
                    self._passed(key)

    # --- event -> keys --------------------------------------------------------------------

    def _api_back(self) -> None:
        # Reconciles that failed while the API server was away grew their keys' backoff (up to
        # retry_max); that is no reason to wait once it answers: look at everything again now.
        for key in [*self.httpsos.items(), *self._route_keys()]:
            self.queue.forget(key)
            self.queue.add(key)

    def _route_keys(self, namespace: str | None = None) -> list[str]:
        return [
            ROUTE_KEY + key
            for key, cached in self.irs.items().items()
            if namespace is None or cached.meta.namespace == namespace
        ]

    def _httpso_changed(self, key: str) -> None:
        cached = self.httpsos.get(key)
        httpso = cached.value.httpso if cached is not None and cached.value is not None else None
        echo = self._echoes.pop(key, None)
        changed = self._input_changed(key, httpso)
        status = cached.value.status if cached is not None and cached.value is not None else None
        if not changed and echo is not None and status == echo:
            return  # our own status write coming back: the pass that wrote it saw the rest
        self.queue.add(key)
        if not changed:
            return  # a status change: nothing the bindings depend on
        self.bindings.changed()
        self.wiring.changed()
        # Objects claiming the same routes may win or lose a rule by this change: look again.
        for other in self.dependents.of_routes(self.dependents.update(key, httpso)):
            self.queue.add(other)

    def _route_changed(self, route_key: str) -> None:
        cached = self.routes.get(route_key)
        if self._input_changed(route_key, None if cached is None else cached.value, "route"):
            self.bindings.changed()
            self.wiring.changed()
        for key in self.dependents.of_routes({route_key}):
            self.queue.add(key)

    def _service_changed(self, service_key: str) -> None:
        namespace, _, name = service_key.partition("/")
        cached = self.services.get(service_key)
        services = self._services_by_ns.setdefault(namespace, {})
        if cached is not None and cached.value is not None:
            services[name] = cached.value
        else:
            services.pop(name, None)
            if not services:
                del self._services_by_ns[namespace]
        for key in self.dependents.of_service(service_key):
            self.queue.add(key)
        for key in self._route_keys(namespace):
            self.queue.add(key)

    def _grant_changed(self, grant_key: str) -> None:
        # A grant lives in the routes' namespace and lets objects of other namespaces bind.
        cached = self.grants.get(grant_key)
        if self._input_changed(grant_key, None if cached is None else cached.value, "grant"):
            self.bindings.changed()
            self.wiring.changed()
        for key in self.dependents.of_grants(grant_key.partition("/")[0]):
            self.queue.add(key)

    def _input_changed(self, key: str, value: object, kind: str = "httpso") -> bool:
        """Whether ``value`` differs, as the bindings see it, from what was last seen of it: a
        new resourceVersion alone (a status write) changes nothing they depend on."""
        meta = getattr(value, "meta", None)
        if meta is not None:
            value = replace(value, meta=replace(meta, resource_version=""))  # type: ignore[type-var]
        seen_key = f"{kind}:{key}"
        if self._inputs_seen.get(seen_key) == value:
            return False
        if value is None:
            self._inputs_seen.pop(seen_key, None)
        else:
            self._inputs_seen[seen_key] = value
        return True

    def _inputs(self) -> Inputs:
        return Inputs(
            tuple(c.httpso for c in self.httpsos.values()),
            tuple(self.routes.values()),
            tuple(self.grants.values()),
        )

    def _build_bindings(self, version: int, inputs: Inputs) -> Bindings:
        return build_bindings(version, inputs, self.interceptor, self.identity)

    # --- reconcile --------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """One level-triggered pass over ``key``; returns when to look again, if time matters."""
        self.reconciles += 1
        if key.startswith(ROUTE_KEY):
            await self._reconcile_route(key.removeprefix(ROUTE_KEY))
            return None
        cached = self.httpsos.get(key)
        so_view = self._scaled_object(key)
        if cached is None:
            self.histories.pop(key, None)
            self._wake_to.pop(key, None)
            self._scale_read.pop(key, None)
            self._echoes.pop(key, None)
            if self.scaler is not None:
                self.scaler.forget(key)
            self._stream_waits.pop(key, None)
            self._forbidden_since.pop(key, None)
            await self.apply(key, None, plan_removal(key, so_view))
            return None
        now = self.clock()
        if cached.value is None:
            assert cached.error is not None
            status = {"conditions": [c.to_json() for c in cached.conditions]}
            observed = Observed(self.mode, status=status)
            result = plan(InvalidSpec(cached.meta, cached.error), observed, now, self.policy)
            await self.apply(key, None, result)
            return None
        bindings = await self.bindings.current()
        # The cache may have moved on while the bindings were built: read it again.
        cached = self.httpsos.get(key)
        if cached is None or cached.value is None:
            self.queue.add(key)
            return None
        httpso = cached.value.httpso
        if self.scaler is not None and self._stream_waits.get(key) != 0.0:
            # A new subscription: open it before reading anything, then wait for its first
            # answer (which pokes the key).
            first = self.scaler.activity(httpso, metrics=False)
            if self._first_answer_pending(key, first.connected):
                return FIRST_ANSWER_WAIT
        workload = await self._workload(httpso)
        self._scale_read[key] = (isinstance(workload, int), time.monotonic())
        awake = isinstance(workload, int) and workload > 0
        activity = self.scaler.activity(httpso, metrics=awake) if self.scaler is not None else None
        observed = Observed(
            self.mode,
            workload=workload,
            status=cached.value.status,
            services=MappingProxyType(self._services_by_ns.get(httpso.namespace, {})),
            problems=bindings.problems_of(key),
            conflicts=bindings.conflicts_of(key),
            identities=bindings.identities_of(key),
            scaled_object=so_view,
            activity=activity,
            history=self.histories.get(key, ()),
            woken_at=self._woken_at.pop(key, None),
        )
        result = plan(httpso, observed, now, self.policy)
        if result.wake_to is None:
            self._wake_to.pop(key, None)
        else:
            self._wake_to[key] = result.wake_to
        if result.history:
            self.histories[key] = result.history
        else:
            self.histories.pop(key, None)
        await self.apply(key, httpso, result)
        return result.requeue_after

    async def _reconcile_route(self, key: str) -> None:
        """An InterceptorRoute's pass: its Ready condition, nothing else (see routestatus)."""
        cached = self.irs.get(key)
        if cached is None:
            return
        namespace, _, name = key.partition("/")
        spec: HTTPScaledObject | InvalidSpec
        if cached.value is not None:
            spec = cached.value
        else:
            assert cached.error is not None
            spec = InvalidSpec(cached.meta, cached.error)
        current = {"conditions": [c.to_json() for c in cached.conditions]}
        services = MappingProxyType(self._services_by_ns.get(namespace, {}))
        status = plan_route_status(spec, services, current, self.clock())
        if status is None:
            return
        stamp = timestamp(self.clock())
        try:
            written = await self.kube.update_status(
                INTERCEPTORROUTES,
                namespace,
                name,
                status,
                rebase=lambda desired, stored: rebase_status(desired, stored, stamp),
            )
        except NotFound:
            return  # deleted meanwhile
        self.status_writes += written

    def _first_answer_pending(self, key: str, connected: bool) -> bool:
        """Whether ``key``'s new StreamIsActive has not answered yet, for at most
        FIRST_ANSWER_WAIT: a pass now would write Active=Unknown only to take it back a moment
        later (at every operator start, for every object), so it waits for the answer."""
        deadline = self._stream_waits.get(key)
        if deadline is None:  # first sight of the key
            if connected:
                self._stream_waits[key] = 0.0
                return False
            self._stream_waits[key] = deadline = time.monotonic() + FIRST_ANSWER_WAIT
        if connected or time.monotonic() >= deadline:
            self._stream_waits[key] = 0.0  # from now on, a silent scaler is reported
            return False
        return True

    def _scaled_object(self, key: str) -> ScaledObjectView | None:
        if self.scaledobjects is None:
            return None
        cached = self.scaledobjects.get(key)
        return None if cached is None else cached.value

    async def _workload(self, httpso: HTTPScaledObject) -> int | Problem:
        """The workload's replicas from its /scale subresource, or why there are none.

        Only /scale is read (the RBAC grants nothing else on workloads); on 404 discovery tells
        a missing object from a kind without /scale or a kind the server does not serve."""
        t = httpso.scale_target
        resource = workload_resource(t.api_version, t.kind)
        what = f"{t.kind} {httpso.namespace}/{t.name} ({t.api_version})"
        try:
            replicas = (await self.kube.get_scale(resource, httpso.namespace, t.name)).replicas
        except Forbidden as exc:
            since = self._forbidden_since.setdefault(httpso.key, time.monotonic())
            if time.monotonic() - since < FORBIDDEN_CONFIRM:
                raise  # perhaps an API server that just started: retried with backoff
            return Problem(WORKLOAD_FORBIDDEN, f"{what}: the operator may not read /scale: {exc}")
        except NotFound:
            replicas = None
        self._forbidden_since.pop(httpso.key, None)
        if replicas is not None:
            return replicas
        group, version = resource.group, resource.version
        if group and not await self.kube.has_resource(group, version, resource.plural):
            return Problem(WORKLOAD_KIND_UNKNOWN, f"{what}: the API server serves no such kind")
        if group and not await self.kube.has_resource(group, version, f"{resource.plural}/scale"):
            return Problem(NO_SCALE_SUBRESOURCE, f"{what}: this kind has no /scale subresource")
        return Problem(WORKLOAD_NOT_FOUND, f"{what} not found")

    async def apply(self, key: str, httpso: HTTPScaledObject | None, p: Plan) -> None:
        """Apply ``p`` in order: replicas first (a wake must not wait), then the ScaledObject,
        the status (only when it changed) and the Events."""
        namespace, _, name = key.partition("/")
        if p.scale is not None and httpso is not None:
            t = httpso.scale_target
            resource = workload_resource(t.api_version, t.kind)
            await self.kube.set_scale(resource, namespace, t.name, p.scale)
            self.stats.scaled(p.scale)
            log.info("%s: scaled %s %s to %d", key, t.kind, t.name, p.scale)
        change = p.scaled_object
        if change is not None:
            if change.action == "create":
                await self.kube.create(SCALEDOBJECTS, namespace, dict(change.body))
            elif change.action == "update":
                await self.kube.merge_patch(
                    SCALEDOBJECTS, namespace, change.name, dict(change.body)
                )
            else:
                with contextlib.suppress(NotFound):
                    await self.kube.delete(SCALEDOBJECTS, namespace, change.name)
            log.info("%s: ScaledObject %s %sd", key, change.name, change.action)
        if p.status is not None:
            # The plan may be older than our own last write (the watch has not delivered it
            # yet): keep each condition's transition time as stored, so that replaying the
            # same state writes nothing.
            stamp = timestamp(self.clock())
            sent: list[dict[str, Any]] = []

            def rebase(status: dict[str, Any], stored: Any) -> dict[str, Any]:
                sent.append(rebase_status(status, stored, stamp))
                return sent[-1]

            try:
                written = await self.kube.update_status(
                    HTTPSCALEDOBJECTS, namespace, name, p.status.to_json(), rebase=rebase
                )
            except NotFound:
                return  # deleted meanwhile; the next event says so
            self.status_writes += written
            if written and p.scale is None:
                # Its echo needs no pass of its own, unless the replicas just changed: the pass
                # after a scale sees them (and arms the wake fast path at zero).
                self._echoes[key] = sent[-1]
        if httpso is not None:
            involved = {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "namespace": namespace,
                "name": name,
                "uid": httpso.meta.uid,
            }
            for event in p.events:
                try:
                    await self.kube.create_event(
                        involved, event.reason, event.message, type=event.type
                    )
                except KubeError as exc:  # an Event is a record, never worth a retry
                    log.warning("%s: event %s not recorded: %s", key, event.reason, exc)
