"""The shell that writes route identities into opted-in HTTPRoutes (see
:mod:`wakeway.operator.routefilter` for what is written and why it is a JSON Patch).

Each change of the bindings' inputs (HTTPScaledObjects, HTTPRoutes, ReferenceGrants) starts a
pass over the cached routes once the bindings include it. A route whose inputs (its
resourceVersion, its bound rules, its identity) were last found to need nothing is skipped, so
the steady state makes no API calls. A route that needs edits is read once for its
managedFields (whether the operator is the sole manager of ``spec.rules``) and patched on the
condition that it is still the version planned from; a failed pass is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging

from wakeway.kube import Kube, KubeError, NotFound
from wakeway.kube.informer import Informer
from wakeway.kube.patch import conditional_json_patch, field_managers
from wakeway.kube.resources import HTTPROUTES
from wakeway.model.httproute import HTTPRoute
from wakeway.operator.bindings import BindingsCache
from wakeway.operator.routefilter import FIELD_MANAGER, plan_route_filter
from wakeway.routing import RouteIdentity

log = logging.getLogger("wakeway.operator")

RETRY_MIN = 0.5
RETRY_MAX = 30.0


class RouteWiring:
    def __init__(
        self,
        kube: Kube,
        routes: Informer[HTTPRoute],
        bindings: BindingsCache,
        identity: RouteIdentity | None,
    ) -> None:
        self.kube = kube
        self.routes = routes
        self.bindings = bindings
        self.identity = identity
        self.writes = 0  # patches that went through
        self._settled: dict[str, tuple[str, frozenset[int], str | None]] = {}
        self._changed = asyncio.Event()
        self._retry = RETRY_MIN

    def changed(self) -> None:
        """The bindings' inputs changed: look at the routes again."""
        self._changed.set()

    async def run(self) -> None:
        self._changed.set()  # the first pass, over what the caches hold at start
        while True:
            await self._changed.wait()
            self._changed.clear()
            if await self.wire_all():
                self._retry = RETRY_MIN
                continue
            log.debug("route identities: retrying in %.1f s", self._retry)
            asyncio.get_running_loop().call_later(self._retry, self._changed.set)
            self._retry = min(self._retry * 2, RETRY_MAX)

    async def wire_all(self) -> bool:
        """One pass over every cached route; False when some write failed (retry later)."""
        table = (await self.bindings.current()).table
        routes = self.routes.values()
        ok = True
        for route in routes:
            try:
                await self._wire(route, table.bound_rules(route.key))
            except KubeError as exc:
                log.warning("HTTPRoute %s: route identity not written: %s", route.key, exc)
                ok = False
        present = {r.key for r in routes}
        for key in [k for k in self._settled if k not in present]:
            del self._settled[key]
        return ok

    async def _wire(self, route: HTTPRoute, bound: frozenset[int]) -> None:
        identity = None if self.identity is None else self.identity.stamp(route.key)
        inputs = (route.meta.resource_version, bound, identity)
        if self._settled.get(route.key) == inputs:
            return
        if not plan_route_filter(route, bound, identity, ours=True):
            self._settled[route.key] = inputs
            return
        try:
            doc = await self.kube.get(HTTPROUTES, route.namespace, route.name)
        except NotFound:
            return  # its deletion is on the way to the cache
        version = str((doc.get("metadata") or {}).get("resourceVersion", ""))
        if version != route.meta.resource_version:
            return  # the cache is behind; its update starts another pass
        ours = field_managers(doc, "spec", "rules") == {FIELD_MANAGER}
        ops = plan_route_filter(route, bound, identity, ours=ours)
        if ops:
            await conditional_json_patch(
                self.kube,
                HTTPROUTES,
                route.namespace,
                route.name,
                [op.to_json() for op in ops],
                resource_version=version,
                field_manager=FIELD_MANAGER,
            )
            self.writes += 1
            log.info(
                "HTTPRoute %s: route identity %s (%s)",
                route.key,
                "written" if any(op.op != "remove" for op in ops) else "removed",
                ", ".join(f"{op.op} {op.path}" for op in ops),
            )
        self._settled[route.key] = inputs
