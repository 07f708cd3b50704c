"""Warm windows in the operator (pure): KEDA cron triggers, the floor, status and condition.

In KEDA mode each window becomes one ``cron`` trigger on the generated ScaledObject (KEDA
keeps the largest replica count any trigger asks for). KEDA's trigger is a pair of cron
expressions, ``start`` and ``end``, evaluated on the wall clock; a window is the schedule
moved back by ``leadTime`` and forward by ``duration``. Where no pair says exactly the same,
the window is left out and the WarmWindows condition names the field; nothing is approximated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wakeway.model.conditions import ConditionStatus
from wakeway.model.cron import shifted, shortest_gap
from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.warm import Occurrence, Warmth, WarmWindow
from wakeway.operator.scaling import Floor
from wakeway.operator.status import WarmWindowStatus

WARM_WINDOWS = "WarmWindows"
TRIGGER_PREFIX = "warm-window-"


def cron_triggers(httpso: HTTPScaledObject) -> tuple[list[dict[str, Any]], list[str]]:
    """One KEDA cron trigger per window that KEDA can express, and a problem for each other."""
    triggers: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, window in enumerate(httpso.warm_windows):
        trigger = _cron_trigger(window, f"spec.warmWindows[{i}]")
        if isinstance(trigger, str):
            problems.append(trigger)
        else:
            triggers.append({"type": "cron", "name": f"{TRIGGER_PREFIX}{i}", "metadata": trigger})
    return triggers, problems


def _cron_trigger(window: WarmWindow, path: str) -> dict[str, str] | str:
    """The trigger's metadata, or what is in the way, naming the field."""
    for key, seconds in (("leadTime", window.lead_time), ("duration", window.duration)):
        if seconds % 60:
            return (
                f"{path}.{key}: {seconds:g}s is not whole minutes; KEDA's cron trigger has "
                "minute resolution"
            )
    lead, length = int(window.lead_time // 60), int(window.duration // 60)
    start = shifted(window.schedule, -lead)
    if start is None:
        return (
            f"{path}.leadTime: the schedule moved {lead}m earlier is not one cron expression "
            "(it crosses midnight or a month's end for some times only)"
        )
    end = shifted(window.schedule, length)
    if end is None:
        return (
            f"{path}.duration: the schedule moved {length}m later is not one cron expression "
            "(it crosses midnight or a month's end for some times only)"
        )
    gap = shortest_gap(window.schedule)
    if lead + length >= gap or start == end:
        return (
            f"{path}.duration: leadTime + duration ({lead + length}m) is not shorter than the "
            f"{gap}m between two openings; KEDA's cron trigger cannot express overlapping or "
            "back-to-back windows"
        )
    return {
        "timezone": window.time_zone,
        "start": start,
        "end": end,
        "desiredReplicas": str(window.min_replicas),
    }


def floor_of(warmth: Warmth, timestamp: Callable[[float], str]) -> Floor | None:
    """The floor to hold ``decide`` to while a window is in force."""
    occ = warmth.current
    if warmth.floor <= 0 or occ is None:
        return None
    return Floor(
        warmth.floor,
        f"warm window spec.warmWindows[{occ.index}] is open until {timestamp(occ.end)}",
    )


def status_entry(occ: Occurrence, timestamp: Callable[[float], str]) -> WarmWindowStatus:
    """``status.nextWarmWindow``: the window in force now, or else the next to open."""
    return WarmWindowStatus(
        occ.index, timestamp(occ.wake), timestamp(occ.start), timestamp(occ.end), occ.min_replicas
    )


def condition(
    httpso: HTTPScaledObject, mode: str, problems: list[str]
) -> tuple[ConditionStatus, str, str]:
    count = len(httpso.warm_windows)
    if mode == "standalone":
        return (
            "True",
            "Scheduled",
            f"the operator keeps the workload at each of the {count} window(s)' minReplicas "
            "while it is open",
        )
    if httpso.skip_scaledobject:
        return (
            "False",
            "ScaledObjectSkipped",
            "ScaledObject creation is skipped by annotation, so no cron trigger carries the "
            "warm windows",
        )
    if problems:
        return "False", "NotExpressible", "; ".join(problems)
    return (
        "True",
        "CronTriggers",
        f"each of the {count} window(s) is a cron trigger on the ScaledObject; KEDA keeps the "
        "largest replica count any trigger asks for",
    )
