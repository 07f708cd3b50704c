"""The reconcile shell: informers feed a de-duplicating work queue; each key is reconciled by
reading the caches (and the workload's /scale), calling :func:`~wakeway.operator.plan.plan`, and
applying its effects idempotently. Nothing here decides anything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from wakeway.kube import Forbidden, Informer, Kube, KubeError, NotFound
from wakeway.kube.resources import (
    HTTPROUTES,
    HTTPSCALEDOBJECTS,
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
from wakeway.model.logs import event
from wakeway.model.service import ReferenceGrant, Service, parse_reference_grant, parse_service
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
from wakeway.operator.scaling import Activity, Recommendation
from wakeway.operator.settings import OperatorSettings
from wakeway.operator.workqueue import ShutDown, WorkQueue
from wakeway.routing import InterceptorRef, RouteGrants, RouteIdentity, RoutingTable

log = logging.getLogger("wakeway.operator")


class ScalerLink(Protocol):
    """What standalone mode needs from the scaler (see :mod:`wakeway.operator.scalerlink`)."""

    def activity(self, httpso: HTTPScaledObject) -> Activity:
        """The latest word on ``httpso``; subscribes on first use (and when its metric changes)."""
        ...

    def forget(self, key: str) -> None: ...


async def detect_mode(kube: Kube, setting: str) -> Mode:
    if setting in ("keda", "standalone"):
        return setting  # type: ignore[return-value]
    keda = await kube.has_resource("keda.sh", "v1alpha1", "scaledobjects")
    return "keda" if keda else "standalone"


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
        self.scaledobjects: Informer[ScaledObjectView] | None = None
        if mode == "keda":
            self.scaledobjects = Informer(kube, SCALEDOBJECTS, parse_scaled_object, namespace=ns)
        self.interceptor = InterceptorRef(*settings.interceptor_service)
        key = settings.route_identity_key
        self.identity = RouteIdentity(key) if key else None
        self.histories: dict[str, tuple[Recommendation, ...]] = {}
        self._claims: dict[str, set[str]] = {}  # route keys each object binds, as last seen
        self.reconciles = 0
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
        out: list[Informer[Any]] = [self.httpsos, self.routes, self.services, self.grants]
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
        if self.scaledobjects is not None:
            self.scaledobjects.add_handler(self.queue.add)
        for informer in self.informers:
            self._tasks.append(informer.start())
        try:
            await asyncio.gather(*(i.synced.wait() for i in self.informers))
            log.info("operator: caches synced (%s mode)", self.mode)
            self.ready.set()
            for key in list(self.httpsos.items()):
                self.queue.add(key)
            workers = [
                asyncio.create_task(self._worker(), name=f"reconcile-{i}")
                for i in range(self.settings.workers)
            ]
            self._tasks.extend(workers)
            self._tasks.append(asyncio.create_task(self._resync(), name="resync"))
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def stop(self) -> None:
        self.queue.shutdown()
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
        while True:
            await asyncio.sleep(self.settings.resync)
            for key in list(self.httpsos.items()):
                self.queue.add(key)
            self.resyncs += 1

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                requeue = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self.queue.add_rate_limited(key)
                level = logging.WARNING if isinstance(exc, KubeError) else logging.ERROR
                log.log(level, "reconcile %s failed (retry in %.1fs): %s", key, delay, exc)
            else:
                self.queue.forget(key)
                if requeue is not None:
                    self.queue.add_after(key, max(requeue, 0.05))
            finally:
                self.queue.done(key)

    # --- event -> keys --------------------------------------------------------------------

    def _targets(self) -> list[HTTPScaledObject]:
        return [t.httpso for t in self.httpsos.values()]

    def _api_back(self) -> None:
        # Reconciles that failed while the API server was away grew their keys' backoff (up to
        # retry_max); that is no reason to wait once it answers: look at everything again now.
        for key in list(self.httpsos.items()):
            self.queue.forget(key)
            self.queue.add(key)

    def _httpso_changed(self, key: str) -> None:
        # Objects claiming the same routes may win or lose a rule by this change: look again.
        cached = self.httpsos.get(key)
        now: set[str] = set()
        if cached is not None and cached.value is not None:
            now = {b.route_key for b in cached.value.httpso.routes}
        routes = now | self._claims.pop(key, set())
        if now:
            self._claims[key] = now
        self.queue.add(key)
        if routes:
            for t in self._targets():
                if t.key != key and any(b.route_key in routes for b in t.routes):
                    self.queue.add(t.key)

    def _route_changed(self, route_key: str) -> None:
        for t in self._targets():
            if any(b.route_key == route_key for b in t.routes):
                self.queue.add(t.key)

    def _service_changed(self, service_key: str) -> None:
        namespace, _, name = service_key.partition("/")
        for t in self._targets():
            failover = t.failover.backend.service if t.failover else None
            if t.namespace == namespace and name in (t.backend.service, failover):
                self.queue.add(t.key)

    def _grant_changed(self, grant_key: str) -> None:
        # A grant lives in the routes' namespace and lets objects of other namespaces bind.
        namespace = grant_key.partition("/")[0]
        for t in self._targets():
            if t.namespace != namespace and any(b.namespace == namespace for b in t.routes):
                self.queue.add(t.key)

    # --- reconcile --------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """One level-triggered pass over ``key``; returns when to look again, if time matters."""
        self.reconciles += 1
        cached = self.httpsos.get(key)
        so_view = self._scaled_object(key)
        if cached is None:
            self.histories.pop(key, None)
            self._wake_to.pop(key, None)
            if self.scaler is not None:
                self.scaler.forget(key)
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
        httpso = cached.value.httpso
        table = RoutingTable(
            self._targets(),
            self.routes.values(),
            self.interceptor,
            RouteGrants.of(self.grants.values()),
            identity=self.identity,
        )
        observed = Observed(
            self.mode,
            workload=await self._workload(httpso),
            status=cached.value.status,
            services={
                c.value.name: c.value
                for k, c in self.services.items().items()
                if c.value is not None and k.partition("/")[0] == httpso.namespace
            },
            problems=tuple(table.problems_of(key)),
            conflicts=tuple(table.conflicts_of(key)),
            identities=table.identities_of(key),
            scaled_object=so_view,
            activity=self.scaler.activity(httpso) if self.scaler is not None else None,
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
            return (await self.kube.get_scale(resource, httpso.namespace, t.name)).replicas
        except Forbidden as exc:
            return Problem(WORKLOAD_FORBIDDEN, f"{what}: the operator may not read /scale: {exc}")
        except NotFound:
            pass
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
            try:
                written = await self.kube.update_status(
                    HTTPSCALEDOBJECTS,
                    namespace,
                    name,
                    p.status.to_json(),
                    rebase=lambda status, stored: rebase_status(status, stored, stamp),
                )
            except NotFound:
                return  # deleted meanwhile; the next event says so
            self.status_writes += written
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
