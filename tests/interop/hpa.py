"""Reading what the HPA controller did with KEDA's HPA, and what a Deployment was scaled to.

KEDA names the HPA it makes for a ScaledObject ``keda-hpa-<name>``; its metric is an External
one, ``s<index>-<scaler's metric name>``, read through ``external.metrics.k8s.io`` from KEDA's
metrics API server, which asks KEDA's operator, which asks wakeway's GetMetrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from wakeway.kube import Kube
from wakeway.kube.resources import DEPLOYMENTS, Resource

HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")

_QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|Ki|Mi)?$")
_SCALE = {None: 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "Ki": 1024.0, "Mi": 1024.0**2}


def quantity(value: str) -> float:
    """A Kubernetes quantity as the HPA writes metric values ("3", "2500m")."""
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise ValueError(f"not a quantity this test reads: {value!r}")
    return float(match.group(1)) * _SCALE[match.group(2)]


@dataclass(frozen=True)
class HpaStatus:
    desired: int
    current: int
    metric: str  # the External metric's name
    average: float | None  # its current averageValue (the total over current replicas)
    conditions: dict[str, str]  # type -> status

    @property
    def total(self) -> float | None:
        """The metric's value as the scaler reported it (averageValue x current replicas)."""
        return None if self.average is None else self.average * self.current

    def __str__(self) -> str:
        average = "none" if self.average is None else f"{self.average:g}"
        return (
            f"desiredReplicas={self.desired} currentReplicas={self.current} "
            f"currentMetrics=[External {self.metric} averageValue={average}] "
            f"conditions={self.conditions}"
        )


def status_of(hpa: dict[str, Any]) -> HpaStatus:
    status = hpa.get("status") or {}
    metric, average = "", None
    for m in status.get("currentMetrics") or []:
        if m.get("type") == "External":
            metric = m["external"]["metric"]["name"]
            current = m["external"].get("current") or {}
            if "averageValue" in current:
                average = quantity(current["averageValue"])
    if not metric:  # no reading yet: the metric asked for, from the spec
        for m in hpa.get("spec", {}).get("metrics") or []:
            if m.get("type") == "External":
                metric = m["external"]["metric"]["name"]
    return HpaStatus(
        desired=int(status.get("desiredReplicas") or 0),
        current=int(status.get("currentReplicas") or 0),
        metric=metric,
        average=average,
        conditions={c["type"]: c["status"] for c in status.get("conditions") or []},
    )


async def keda_hpa(kube: Kube, namespace: str, scaled_object: str) -> HpaStatus:
    return status_of(await kube.get(HPAS, namespace, f"keda-hpa-{scaled_object}"))


@dataclass
class ReplicaLog:
    """Every value a Deployment's spec.replicas took, with the wall-clock time it was seen,
    from a watch (so no change between two polls goes unseen)."""

    kube: Kube
    namespace: str
    name: str
    history: list[tuple[float, int]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReplicaLog:
        found = await self.kube.list(DEPLOYMENTS, self.namespace)
        for d in found.items:
            if d["metadata"]["name"] == self.name:
                self._record(d)
        self._task = asyncio.create_task(self._follow(found.resource_version))
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self, version: str) -> None:
        while True:
            async for event in self.kube.watch(DEPLOYMENTS, self.namespace, version):
                version = event.object.get("metadata", {}).get("resourceVersion", version)
                if event.type in ("ADDED", "MODIFIED") and (
                    event.object["metadata"]["name"] == self.name
                ):
                    self._record(event.object)

    def _record(self, deployment: dict[str, Any]) -> None:
        replicas = int(deployment["spec"].get("replicas") or 0)
        if not self.history or self.history[-1][1] != replicas:
            self.history.append((time.time(), replicas))

    @property
    def now(self) -> int:
        return self.history[-1][1] if self.history else -1

    def values(self, since: float = 0.0, until: float = float("inf")) -> list[int]:
        """The values in order (the one in force at ``since`` first), repeats collapsed."""
        before = [r for t, r in self.history if t < since][-1:]
        return before + [r for t, r in self.history if since <= t <= until]

    def first(self, replicas: int) -> float | None:
        """When spec.replicas first became ``replicas``."""
        return next((t for t, r in self.history if r == replicas), None)
