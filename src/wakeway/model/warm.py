"""Warm windows (pure): when a workload must be kept at a minimum number of replicas.

A window fires on a cron ``schedule`` in ``timeZone``; each time it fires it keeps the workload
at ``minReplicas`` or more for ``duration`` (elapsed time), and wakes it ``leadTime`` earlier.
:func:`warmth` says, for an instant given by the caller's clock, the floor every window asks for,
when that may change by time alone, and which window is open now or opens next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from wakeway.model import fields as f
from wakeway.model.cron import Cron, next_fire, parse_cron, zone
from wakeway.model.errors import ModelError

DEFAULT_TIME_ZONE = "UTC"
DEFAULT_WINDOW_REPLICAS = 1
MAX_WINDOWS = 16


@dataclass(frozen=True, slots=True)
class WarmWindow:
    schedule: Cron
    duration: float  # seconds, elapsed
    time_zone: str = DEFAULT_TIME_ZONE
    min_replicas: int = DEFAULT_WINDOW_REPLICAS
    lead_time: float = 0.0  # seconds before each opening that the workload is woken
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIME_ZONE), compare=False)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One opening of window ``index``: woken at ``wake``, open from ``start`` to ``end``."""

    index: int
    wake: float
    start: float
    end: float
    min_replicas: int


@dataclass(frozen=True, slots=True)
class Warmth:
    floor: int  # the largest minReplicas of the windows in force now (0: none)
    next_change: float | None  # when a window opens or closes next (epoch seconds)
    current: Occurrence | None  # the window in force now, or else the next to open


def parse_warm_windows(
    spec: Mapping[str, Any], p: str, max_replicas: int
) -> tuple[WarmWindow, ...]:
    out: list[WarmWindow] = []
    items = f.opt_list(spec, "warmWindows", p)
    if len(items) > MAX_WINDOWS:
        raise ModelError(f"{p}.warmWindows", f"at most {MAX_WINDOWS} windows, got {len(items)}")
    for i, raw in enumerate(items):
        out.append(_window(f.mapping(raw, f"{p}.warmWindows[{i}]"), f"{p}.warmWindows[{i}]"))
        if out[-1].min_replicas > max_replicas:
            raise ModelError(
                f"{p}.warmWindows[{i}].minReplicas",
                f"must not be greater than spec.replicas.max ({max_replicas}), "
                f"got {out[-1].min_replicas}",
            )
    return tuple(out)


def _window(item: Mapping[str, Any], path: str) -> WarmWindow:
    # Each field on its own (f.guard), so a bad schedule and a bad zone are reported together.
    schedule = f.guard(
        item,
        "schedule",
        lambda: parse_cron(f.req_str(item, "schedule", path), f"{path}.schedule"),
        _NEVER_READ,
    )
    name = f.opt_str(item, "timeZone", path, DEFAULT_TIME_ZONE)
    tz = f.guard(item, "timeZone", lambda: zone(name, f"{path}.timeZone"), _UTC)
    return WarmWindow(
        schedule=schedule,
        duration=f.guard(item, "duration", lambda: _duration(item, path), 1.0),
        time_zone=name,
        min_replicas=f.opt_int(
            item, "minReplicas", path, DEFAULT_WINDOW_REPLICAS, minimum=1, maximum=10000
        ),
        lead_time=f.opt_duration(item, "leadTime", path, 0.0),
        zone=tz,
    )


def _duration(item: Mapping[str, Any], path: str) -> float:
    value = item.get("duration")
    if value is None:
        raise ModelError(f"{path}.duration", "is required")
    duration = f.parse_duration(value, f"{path}.duration")
    if duration <= 0:
        raise ModelError(f"{path}.duration", "must be greater than zero")
    return duration


# Stand-ins while a document with problems is still being read (it is rejected in the end).
_NEVER_READ = parse_cron("0 0 * * *", "")
_UTC = ZoneInfo("UTC")


def occurrence(window: WarmWindow, index: int, now: float) -> Occurrence | None:
    """The earliest opening of ``window`` that has not closed by ``now``."""
    start = next_fire(window.schedule, window.zone, now - window.duration)
    if start is None:
        return None
    return Occurrence(
        index, start - window.lead_time, start, start + window.duration, window.min_replicas
    )


def warmth(windows: Sequence[WarmWindow], now: float) -> Warmth:
    floor = 0
    change: float | None = None
    current: Occurrence | None = None
    for i, window in enumerate(windows):
        occ = occurrence(window, i, now)
        if occ is None:
            continue
        in_force = occ.wake <= now
        if in_force:
            floor = max(floor, occ.min_replicas)
        edge = occ.end if in_force else occ.wake
        change = edge if change is None else min(change, edge)
        if current is None or (occ.wake, occ.index) < (current.wake, current.index):
            current = occ
    return Warmth(floor, change, current)
