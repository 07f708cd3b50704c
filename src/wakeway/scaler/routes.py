"""InterceptorRoutes as the scaler sees them: the metrics a trigger naming one asks about.

A ScaledObject that the user wrote for an InterceptorRoute (the add-on's way since v0.14)
carries only the route's name in its trigger (``interceptorRoute``); the metric, its target and
window are in the route's ``spec.scalingMetric``. So in Kubernetes the scaler follows
InterceptorRoutes with an informer (:class:`KubeRoutes`, read access only; none while their
CRD is not installed), and answers from that cache: a change of the route's metrics applies to
the next call. :class:`StaticRoutes` holds a fixed set (tests; a scaler outside Kubernetes has
none, and answers NOT_FOUND for every route).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from wakeway.kube import Informer, Kube
from wakeway.kube.resources import INTERCEPTORROUTES
from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.interceptorroute import parse_interceptorroute
from wakeway.model.trigger import MetricTarget, route_metrics


class RouteSource(Protocol):
    def metrics_of(self, key: str) -> tuple[MetricTarget, ...] | None:
        """The metrics of the InterceptorRoute ``namespace/name``; None if there is none."""
        ...

    def synced(self) -> bool:
        """Whether the routes were listed at least once (a miss before is no answer yet)."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StaticRoutes:
    def __init__(self, routes: Iterable[HTTPScaledObject] = ()) -> None:
        self._metrics = {r.key: route_metrics(r) for r in routes}

    def metrics_of(self, key: str) -> tuple[MetricTarget, ...] | None:
        return self._metrics.get(key)

    def synced(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class KubeRoutes:
    def __init__(self, kubeconfig: str | None) -> None:
        self.kubeconfig = kubeconfig
        self._kube: Kube | None = None
        self._informer: Informer[HTTPScaledObject] | None = None
        # Metrics per route, computed once per version of its spec.
        self._metrics: dict[str, tuple[HTTPScaledObject, tuple[MetricTarget, ...]]] = {}

    def metrics_of(self, key: str) -> tuple[MetricTarget, ...] | None:
        cached = None if self._informer is None else self._informer.get(key)
        if cached is None or cached.value is None:
            self._metrics.pop(key, None)
            return None
        route = cached.value
        known = self._metrics.get(key)
        if known is None or known[0] is not route:
            known = (route, route_metrics(route))
            self._metrics[key] = known
        return known[1]

    def synced(self) -> bool:
        return self._informer is not None and self._informer.synced.is_set()

    async def start(self) -> None:
        """Start following InterceptorRoutes (not waiting for the first list)."""
        self._kube = await Kube.connect(self.kubeconfig)
        self._informer = Informer(
            self._kube, INTERCEPTORROUTES, parse_interceptorroute, optional=True
        )
        self._informer.start()

    async def stop(self) -> None:
        informer, self._informer = self._informer, None
        kube, self._kube = self._kube, None
        if informer is not None:
            await informer.stop()
        if kube is not None:
            await kube.close()
