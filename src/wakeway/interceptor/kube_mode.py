"""The interceptor in Kubernetes mode: informers feed the routing table and endpoint view.

HTTPScaledObjects, InterceptorRoutes, HTTPRoutes and ReferenceGrants rebuild the routing table;
Services and EndpointSlices (and the targets) rebuild the ready-endpoint view. An InterceptorRoute
is a target like an HTTPScaledObject (and replaces one of the same namespace and name); its CRD
may be missing (a cluster set up before it): then there are none. A routing-table rebuild reads
the informers' caches whole and swaps the result in one assignment; the endpoint view is kept
change by change (a Service or EndpointSlice event recomputes that Service's backends only).
Watch events only mark what is stale, and a burst of events within ``debounce`` seconds costs
one rebuild. An HTTPScaledObject
event that changes nothing the interceptor reads (a status write, other than one that makes it
unservable or servable again) marks nothing. /readyz stays false
until every informer has listed once. While the API server is unreachable the informers keep
their caches, so the interceptor keeps serving from its last snapshot.

Requests are not held for what cannot come: an HTTPScaledObject whose Ready condition says its
workload or Service is missing (:func:`~wakeway.model.conditions.unservable`) is answered 503 at
once, and requests held for an HTTPScaledObject that is deleted are answered 503 at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Protocol

from wakeway.kube import Informer, Kube
from wakeway.kube.informer import Cached
from wakeway.kube.resources import (
    ENDPOINTSLICES,
    HTTPROUTES,
    HTTPSCALEDOBJECTS,
    INTERCEPTORROUTES,
    REFERENCEGRANTS,
    SERVICES,
)
from wakeway.model.conditions import unservable
from wakeway.model.httproute import HTTPRoute, parse_httproute
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.model.interceptorroute import parse_interceptorroute
from wakeway.model.service import (
    EndpointSlice,
    ReferenceGrant,
    Service,
    parse_endpoint_slice,
    parse_reference_grant,
    parse_service,
)
from wakeway.observe.debug import EndpointChanges, log_table_swap
from wakeway.routing import (
    EndpointIndex,
    InterceptorRef,
    RouteGrants,
    RouteIdentity,
    RoutingTable,
    backends_of,
    merge_targets,
)

from .kube_tls import SecretCertificates
from .server import Interceptor
from .settings import InterceptorSettings, KubeModeSettings

log = logging.getLogger("wakeway.interceptor.kube")


class _Watching(Protocol):
    synced: asyncio.Event

    def start(self) -> asyncio.Task[None]: ...

    async def stop(self) -> None: ...

    def items(self) -> Mapping[str, object]: ...


class KubeConfigSource:
    """Keeps an :class:`Interceptor`'s router and endpoint view in step with the cluster."""

    def __init__(self, kube: Kube, interceptor: Interceptor, settings: KubeModeSettings) -> None:
        self.kube = kube
        self.interceptor = interceptor
        self.settings = settings
        self.ref = InterceptorRef(*settings.interceptor_service)
        self.identity = RouteIdentity(settings.identity_key) if settings.identity_key else None
        self.scaled: Informer[HTTPScaledObject] = Informer(
            kube, HTTPSCALEDOBJECTS, parse_httpscaledobject
        )
        self.irs: Informer[HTTPScaledObject] = Informer(
            kube, INTERCEPTORROUTES, parse_interceptorroute, optional=True
        )
        self.routes: Informer[HTTPRoute] = Informer(kube, HTTPROUTES, parse_httproute)
        self.grants: Informer[ReferenceGrant] = Informer(
            kube, REFERENCEGRANTS, parse_reference_grant
        )
        self.services: Informer[Service] = Informer(kube, SERVICES, parse_service)
        self.slices: Informer[EndpointSlice] = Informer(kube, ENDPOINTSLICES, parse_endpoint_slice)
        self._table_stale = True
        self._view_stale = True
        self._targets_changed = True  # the view's backends are due again
        probing = interceptor.settings.early_probe_interval is not None
        self._index = EndpointIndex(track_starting=probing)
        self._endpoint_changes = EndpointChanges(log)
        self._pending: asyncio.Task[None] | None = None  # the routing-table rebuild
        self._view_task: asyncio.Task[None] | None = None  # the endpoint-view refresh
        self._view_built = float("-inf")  # loop time of the last endpoint-view rebuild
        self._ready = False
        self.table: RoutingTable | None = None
        self.rebuilds = 0
        self.view_refreshes = 0
        self.unservable: dict[str, str] = {}  # target key -> why requests cannot be served
        self._read: dict[str, object] = {}  # target key -> what of it the interceptor reads
        self.skipped = 0  # target events that changed nothing read here
        interceptor.on_cold(self._on_cold)
        self.scaled.add_handler(lambda key: self._target_changed(self.scaled, "", key))
        self.irs.add_handler(lambda key: self._target_changed(self.irs, "ir:", key))
        self.routes.add_handler(lambda _key: self._mark(table=True))
        self.grants.add_handler(lambda _key: self._mark(table=True))
        self.services.add_handler(self._service_changed)
        self.slices.add_handler(self._slice_changed)
        self._informers: tuple[_Watching, ...] = (
            self.scaled,
            self.irs,
            self.routes,
            self.grants,
            self.services,
            self.slices,
        )

    async def start(self) -> None:
        """Start watching; returns once every informer has listed and the first table is in."""
        for informer in self._informers:
            informer.start()
        await asyncio.gather(*(i.synced.wait() for i in self._informers))
        self._ready = True
        # Recorded as the pending tasks, so an event meanwhile does not start a second one
        # whose older result could land last.
        self._view_task = asyncio.create_task(self._refresh_view(0.0))
        self._pending = asyncio.create_task(self._rebuild(debounce=0.0))
        await asyncio.gather(self._view_task, self._pending)
        log.info(
            "synced: %d HTTPScaledObjects, %d InterceptorRoutes, %d HTTPRoutes, %d Services, "
            "%d EndpointSlices",
            len(self.scaled.items()),
            len(self.irs.items()),
            len(self.routes.items()),
            len(self.services.items()),
            len(self.slices.items()),
        )

    async def stop(self) -> None:
        tasks = [t for t in (self._pending, self._view_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(i.stop() for i in self._informers))

    def targets(self) -> list[HTTPScaledObject]:
        """Every target: HTTPScaledObjects, and InterceptorRoutes in place of any of theirs."""
        return merge_targets(self.scaled.values(), self.irs.values())

    def _target_changed(self, informer: Informer[HTTPScaledObject], kind: str, key: str) -> None:
        cached = informer.get(key)
        if cached is None:
            self._read.pop(kind + key, None)
        else:
            read = what_is_read(cached)
            if self._read.get(kind + key) == read:
                self.skipped += 1
                return
            self._read[kind + key] = read
        self._targets_changed = True
        self._mark(table=True, view=True)

    def _service_changed(self, key: str) -> None:
        cached = self.services.get(key)
        self._index.service(key, None if cached is None else cached.value)
        self._mark(view=True)

    def _slice_changed(self, key: str) -> None:
        cached = self.slices.get(key)
        self._index.slice(key, None if cached is None else cached.value)
        self._mark(view=True)

    def _mark(self, table: bool = False, view: bool = False) -> None:
        self._table_stale |= table
        self._view_stale |= view
        if not self._ready:
            return
        debounce = self.settings.debounce
        if self._view_stale and (self._view_task is None or self._view_task.done()):
            # Endpoint changes are acted on at once (a new ready pod releases held requests),
            # also while a routing table is being built; only a burst waits out the debounce.
            now = asyncio.get_running_loop().time()
            delay = max(0.0, self._view_built + debounce - now)
            self._view_task = asyncio.create_task(self._refresh_view(delay))
        if self._table_stale and (self._pending is None or self._pending.done()):
            self._pending = asyncio.create_task(self._rebuild(debounce))

    async def _refresh_view(self, delay: float) -> None:
        """Bring the endpoint view up to date (on the loop: it is what releases held requests)
        until it is not stale, independently of any routing-table build in progress. A Service
        or EndpointSlice event recomputes the backends of that Service only; a target change,
        every backend (:class:`~wakeway.routing.endpoints.EndpointIndex`)."""
        if delay:
            await asyncio.sleep(delay)
        index = self._index
        while self._view_stale:
            self._view_stale = False
            if self._targets_changed:
                self._targets_changed = False
                self._check_servable()
                index.set_backends(backends_of(self.targets()))
            if not index.refresh():
                continue  # no backend of any target uses what changed
            self._endpoint_changes.swapped(index.view)  # logged before it releases held requests
            starting = index.starting if index.track_starting else None
            self.interceptor.set_endpoints(index.view, index.h2c, starting)
            self._view_built = asyncio.get_running_loop().time()
            self.view_refreshes += 1

    async def _rebuild(self, debounce: float) -> None:
        """Rebuild the routing table until it is not stale, in a worker thread, so a large
        rebuild does not stop the event loop from serving. Inputs are read on the loop."""
        if debounce:
            await asyncio.sleep(debounce)
        while self._table_stale:
            self._table_stale = False
            targets = self.targets()
            routes = self.routes.values()
            grants = RouteGrants.of(self.grants.values())
            before = self.table
            self.table = await asyncio.to_thread(
                RoutingTable, targets, routes, self.ref, grants, self.identity
            )
            self.interceptor.set_router(self.table)
            log_table_swap(log, before, self.table)
            if before is not None:
                for key in before.targets.keys() - self.table.targets.keys():
                    kind = before.targets[key].source  # HTTPScaledObject or InterceptorRoute
                    self._fail(key, f"{kind} {key} was deleted while this request was held for it")
            self.rebuilds += 1

    def _check_servable(self) -> None:
        """Note which targets cannot be served now, and answer what is held for them."""
        found: dict[str, str] = {}
        kept = {t.key: t.source for t in self.targets()}
        for informer in (self.scaled, self.irs):
            for key, cached in informer.items().items():
                if cached.value is not None and kept.get(key) != cached.value.source:
                    continue  # an HTTPScaledObject that an InterceptorRoute replaces
                cond = unservable(cached.conditions, cached.meta.generation)
                if cond is not None:
                    found[key] = f"{key} cannot be served: {cond.reason}: {cond.message}"
        self.unservable = found
        for key, why in found.items():
            self._fail(key, why)

    def _on_cold(self, target: HTTPScaledObject) -> None:
        why = self.unservable.get(target.key)
        if why is not None:
            self._fail(target.key, why)

    def _fail(self, key: str, why: str) -> None:
        answered = self.interceptor.fail_held(key, 503, why)
        if answered:
            log.info("%s: answered %d held request(s) at once: %s", key, answered, why)


def what_is_read(cached: Cached[HTTPScaledObject]) -> object:
    """What the interceptor uses of an HTTPScaledObject: its spec (with its metadata, less the
    resourceVersion that every write changes) and whether its status says it is unservable."""
    value = cached.value
    spec: object = (
        str(cached.error)
        if value is None
        else dataclasses.replace(value, meta=dataclasses.replace(value.meta, resource_version=""))
    )
    cond = unservable(cached.conditions, cached.meta.generation)
    return (spec, None if cond is None else (cond.reason, cond.message))


async def run_in_kubernetes(
    settings: InterceptorSettings, kube_settings: KubeModeSettings, stop: asyncio.Event
) -> None:
    """The interceptor Deployment's main: serve, follow the cluster, drain on ``stop``."""
    kube = await Kube.connect(kube_settings.kubeconfig)
    interceptor = Interceptor(settings)
    source = KubeConfigSource(kube, interceptor, kube_settings)
    secrets: SecretCertificates | None = None
    try:
        await interceptor.start()  # /livez answers at once; /readyz once the first sync is in
        if interceptor.tls is not None and settings.tls_secrets:
            namespace = kube_settings.interceptor_service.namespace
            secrets = SecretCertificates(kube, namespace, interceptor.tls)
            await secrets.start()
        await source.start()
        log.info(
            "interceptor started: proxy on %s:%d, admin on %s:%d, access log %s",
            settings.listen_host,
            interceptor.proxy_port,
            settings.admin_host,
            interceptor.admin_port,
            "on" if settings.access_log else "off",
        )
        await stop.wait()
        log.info("stopping: draining in-flight and held requests")
        await interceptor.drain_and_stop()
        log.info("interceptor stopped")
    finally:
        await source.stop()
        if secrets is not None:
            await secrets.stop()
        await kube.close()
