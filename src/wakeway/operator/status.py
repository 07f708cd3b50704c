"""An HTTPScaledObject's status as the operator writes it: typed, turned into JSON in one place.

The CRD's ``status`` schema and :meth:`Status.to_json` name the same fields; a field that is
``None`` (or an empty list) is left out, as before the operator knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wakeway.model.conditions import Condition


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """``status.routes[]``: one ``spec.routes`` binding and whether it carries traffic."""

    namespace: str
    name: str
    rule_name: str | None = None
    bound: bool = True
    reason: str | None = None  # why not bound
    message: str | None = None
    identity: str | None = None  # the value the route must stamp, only where it may

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name}
        if self.rule_name is not None:
            out["ruleName"] = self.rule_name
        if self.identity is not None:
            out["identity"] = self.identity
        out["bound"] = self.bound
        if self.reason is not None:
            out["reason"] = self.reason
        if self.message is not None:
            out["message"] = self.message
        return out


@dataclass(frozen=True, slots=True)
class ConflictStatus:
    """``status.conflicts[]``: the object that takes what this one also claims."""

    namespace: str
    name: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "message": self.message}


@dataclass(frozen=True, slots=True)
class WarmWindowStatus:
    """``status.nextWarmWindow``: the window in force now, or else the next to open."""

    index: int
    wake_at: str
    start: str
    end: str
    min_replicas: int

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "wakeAt": self.wake_at,
            "start": self.start,
            "end": self.end,
            "minReplicas": self.min_replicas,
        }


@dataclass(frozen=True, slots=True)
class Status:
    observed_generation: int
    mode: str
    conditions: tuple[Condition, ...] = ()
    target_workload: str | None = None
    target_service: str | None = None
    scaled_object: str | None = None  # keda: the ScaledObject this object controls
    last_scale_time: str | None = None  # standalone
    replicas: int | None = None
    next_warm_window: WarmWindowStatus | None = None
    routes: tuple[RouteStatus, ...] = ()
    conflicts: tuple[ConflictStatus, ...] = ()

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"observedGeneration": self.observed_generation, "mode": self.mode}
        optional: tuple[tuple[str, Any], ...] = (
            ("targetWorkload", self.target_workload),
            ("targetService", self.target_service),
            ("scaledObject", self.scaled_object),
            ("lastScaleTime", self.last_scale_time),
            ("replicas", self.replicas),
        )
        out.update((k, v) for k, v in optional if v is not None)
        if self.next_warm_window is not None:
            out["nextWarmWindow"] = self.next_warm_window.to_json()
        if self.routes:
            out["routes"] = [r.to_json() for r in self.routes]
        if self.conflicts:
            out["conflicts"] = [c.to_json() for c in self.conflicts]
        out["conditions"] = [c.to_json() for c in self.conditions]
        return out
