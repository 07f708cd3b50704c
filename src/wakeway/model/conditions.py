"""Status conditions (metav1.Condition) as data, and the rule for updating them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str
    observed_generation: int = 0
    last_transition_time: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "observedGeneration": self.observed_generation,
            "lastTransitionTime": self.last_transition_time,
        }


def parse_conditions(raw: Any) -> tuple[Condition, ...]:
    """Conditions read back from a status; malformed entries are skipped, not fatal."""
    out: list[Condition] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping) or not item.get("type"):
            continue
        status = item.get("status")
        out.append(
            Condition(
                type=str(item["type"]),
                status=status if status in ("True", "False", "Unknown") else "Unknown",
                reason=str(item.get("reason") or ""),
                message=str(item.get("message") or ""),
                observed_generation=int(item.get("observedGeneration") or 0),
                last_transition_time=str(item.get("lastTransitionTime") or ""),
            )
        )
    return tuple(out)


def merge_conditions(
    current: Sequence[Condition], desired: Iterable[Condition], now: str
) -> tuple[Condition, ...]:
    """``desired`` with lastTransitionTime kept from ``current`` where the status did not change
    (and set to ``now`` where it did), so an unchanged state yields an identical list."""
    before = {c.type: c for c in current}
    out = []
    for cond in desired:
        old = before.get(cond.type)
        since = now
        if old is not None and old.status == cond.status and old.last_transition_time:
            since = old.last_transition_time
        out.append(replace(cond, last_transition_time=since))
    return tuple(out)


def rebase_status(desired: Mapping[str, Any], current: Any, now: str) -> dict[str, Any]:
    """``desired`` (planned against a possibly stale copy of the status) with its conditions'
    lastTransitionTime taken again from ``current``, the status as stored now: a plan made
    before the cache saw our own last write then equals that write instead of differing only
    in when each condition last changed."""
    out = dict(desired)
    stored = current if isinstance(current, Mapping) else {}
    if "conditions" in out:
        merged = merge_conditions(
            parse_conditions(stored.get("conditions")),
            parse_conditions(out["conditions"]),
            now,
        )
        out["conditions"] = [c.to_json() for c in merged]
    return out


# Ready=False reasons after which held requests cannot be served until someone changes the
# cluster: the workload or the Service to forward to is missing or unusable. The operator writes
# them; the interceptor answers at once instead of holding requests until the deadline.
WORKLOAD_NOT_FOUND = "WorkloadNotFound"
WORKLOAD_KIND_UNKNOWN = "WorkloadKindUnknown"
NO_SCALE_SUBRESOURCE = "NoScaleSubresource"
WORKLOAD_FORBIDDEN = "WorkloadForbidden"
SERVICE_NOT_FOUND = "ServiceNotFound"
EXTERNAL_NAME_SERVICE = "ExternalNameService"
PORT_NOT_FOUND = "PortNotFound"
UNSERVABLE_REASONS = frozenset(
    {
        WORKLOAD_NOT_FOUND,
        WORKLOAD_KIND_UNKNOWN,
        NO_SCALE_SUBRESOURCE,
        WORKLOAD_FORBIDDEN,
        SERVICE_NOT_FOUND,
        EXTERNAL_NAME_SERVICE,
        PORT_NOT_FOUND,
    }
)


def unservable(conditions: Sequence[Condition], generation: int) -> Condition | None:
    """The Ready condition when it says, for this very generation of the spec, that requests
    cannot be served (see :data:`UNSERVABLE_REASONS`); None otherwise. A condition written for
    an older generation is not trusted: the spec may have been fixed since."""
    for cond in conditions:
        if (
            cond.type == "Ready"
            and cond.status == "False"
            and cond.reason in UNSERVABLE_REASONS
            and cond.observed_generation == generation
        ):
            return cond
    return None
