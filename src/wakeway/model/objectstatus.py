"""What ``wakeway status`` shows of one HTTPScaledObject, in either mode (pure).

Local mode's admin port serves it as JSON (``GET /objects``) and the command reads it back; in
a cluster the command builds it from the object's status, conditions and its workload's /scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

AWAKE = "awake"
ASLEEP = "asleep"
WAKING = "waking"
SLEEPING = "sleeping"
UNKNOWN = "unknown"
STATES = (AWAKE, ASLEEP, WAKING, SLEEPING, UNKNOWN)

# JSON names, in the order of the table's columns.
FIELDS = {
    "namespace": "namespace",
    "name": "name",
    "state": "state",
    "replicas": "replicas",
    "ready": "ready",
    "in_flight": "inFlight",
    "held": "held",
    "routes_bound": "routesBound",
    "routes": "routes",
    "last_wake": "lastWake",
    "last_sleep": "lastSleep",
    "mode": "mode",
    "workload": "workload",
}


@dataclass(frozen=True, slots=True)
class ObjectStatus:
    """``None`` where the mode cannot know (a cluster's in-flight counts live in the
    interceptors; a time before the first transition)."""

    namespace: str
    name: str
    state: str  # one of STATES
    replicas: int | None  # desired (cluster: /scale spec.replicas; local: 1 while running)
    ready: int | None  # ready replicas
    in_flight: int | None
    held: int | None
    routes_bound: int  # spec.routes bindings that carry traffic
    routes: int  # spec.routes bindings
    last_wake: str | None  # RFC 3339
    last_sleep: str | None
    mode: str  # "local", "standalone" or "keda"
    workload: str  # "Kind/name" of the scale target, or the local workload's name

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {FIELDS[k]: v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ObjectStatus:
        """Raises ValueError naming the first field that is missing."""
        values: dict[str, Any] = {}
        for attr, name in FIELDS.items():
            if name not in doc:
                raise ValueError(f"object status: missing field {name!r}")
            values[attr] = doc[name]
        return cls(**values)


def state_of(replicas: int | None, ready: int | None) -> str:
    """awake (ready replicas), asleep (none wanted, none left), waking (wanted, none ready) or
    sleeping (none wanted, some left)."""
    if replicas is None or ready is None:
        return UNKNOWN
    if replicas > 0:
        return AWAKE if ready > 0 else WAKING
    return SLEEPING if ready > 0 else ASLEEP
