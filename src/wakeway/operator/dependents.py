"""Which HTTPScaledObjects an event concerns, without scanning them all (pure).

An HTTPScaledObject depends on the Services it sends traffic to (backend, failover), on the
HTTPRoutes it binds, and on the ReferenceGrants of those routes' namespaces when they are not
its own. :class:`Dependents` keeps those edges as objects come, change and go, so a Service,
HTTPRoute or ReferenceGrant event finds the objects to look at again in time proportional to
their number, not to every object's.
"""

from __future__ import annotations

from dataclasses import dataclass

from wakeway.model.httpso import HTTPScaledObject


@dataclass(frozen=True, slots=True)
class _Edges:
    namespace: str
    services: frozenset[str]  # "namespace/name"
    routes: frozenset[str]  # "namespace/name"


class Dependents:
    def __init__(self) -> None:
        self._edges: dict[str, _Edges] = {}
        self._by_service: dict[str, set[str]] = {}
        self._by_route: dict[str, set[str]] = {}
        self._by_route_namespace: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._edges)

    def update(self, key: str, httpso: HTTPScaledObject | None) -> frozenset[str]:
        """Record what ``key`` depends on now (None: nothing, it is gone or invalid); returns
        the route keys it bound before or binds now (whose other claimants may win or lose)."""
        old = self._edges.pop(key, None)
        if old is not None:
            self._unlink(key, old)
        if httpso is None:
            return old.routes if old is not None else frozenset()
        failover = httpso.failover.backend.service if httpso.failover else None
        services = {httpso.backend.service, *([failover] if failover else [])}
        edges = _Edges(
            httpso.namespace,
            frozenset(f"{httpso.namespace}/{s}" for s in services),
            frozenset(b.route_key for b in httpso.routes),
        )
        self._edges[key] = edges
        for s in edges.services:
            self._by_service.setdefault(s, set()).add(key)
        for r in edges.routes:
            self._by_route.setdefault(r, set()).add(key)
            self._by_route_namespace.setdefault(r.partition("/")[0], set()).add(key)
        return edges.routes | (old.routes if old is not None else frozenset())

    def of_service(self, service_key: str) -> set[str]:
        return set(self._by_service.get(service_key, ()))

    def of_routes(self, route_keys: frozenset[str] | set[str]) -> set[str]:
        out: set[str] = set()
        for r in route_keys:
            out |= self._by_route.get(r, set())
        return out

    def of_grants(self, namespace: str) -> set[str]:
        """Objects of other namespaces binding a route in ``namespace`` (a ReferenceGrant there
        lets them bind or stops them)."""
        return {
            k
            for k in self._by_route_namespace.get(namespace, ())
            if self._edges[k].namespace != namespace
        }

    def _unlink(self, key: str, edges: _Edges) -> None:
        for index, names in (
            (self._by_service, edges.services),
            (self._by_route, edges.routes),
            (self._by_route_namespace, {r.partition("/")[0] for r in edges.routes}),
        ):
            for name in names:
                keys = index.get(name)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[name]
