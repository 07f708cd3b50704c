"""Standalone scaling decisions (pure): wake, 1 -> N, stabilised scale-down, -> 0.

The rules, in order:

1. The scaler's stream is not connected: hold (never wake nor sleep on no information), except
   to bring replicas back inside ``[min, max]`` when they are above zero.
2. At zero: wake to ``max(1, min)`` the moment the stream says active (or when ``min`` > 0).
   A warm window in force raises ``min`` to its floor (the larger of the two applies), and
   wakes the workload even before the stream has answered.
3. Above zero, quiet (stream inactive) for ``scaledownPeriod``, ``min`` = 0, and the
   ``initialCooldownPeriod`` since creation over: scale to zero.
4. Otherwise the recommendation is ``ceil(metric / target)`` bounded by ``[max(1, min), max]``:
   above the current replicas it applies at once; below, the highest recommendation seen within
   the stabilisation window applies (the HPA's scale-down stabilisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from wakeway.model.httpso import HTTPScaledObject


@dataclass(frozen=True, slots=True)
class Activity:
    """What the scaler says about one object."""

    connected: bool  # the StreamIsActive subscription is up and has answered
    active: bool  # the last thing it said
    # Epoch seconds: when the last request ended (the scaler turns inactive an activity window
    # later, which is subtracted), or when we started watching.
    quiet_since: float
    metric: float | None = None  # the last GetMetrics value (total over every interceptor)
    last_active: float | None = None  # epoch seconds: when it was last active (None: not yet)


@dataclass(frozen=True, slots=True)
class Floor:
    """A minimum of replicas in force for now (a warm window), and why, for the Event."""

    replicas: int
    why: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    at: float  # epoch seconds
    replicas: int


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int | None  # the replicas to set; None: leave them
    reason: Literal["Woken", "Scaled", "ScaledToZero", ""] = ""
    message: str = ""
    history: tuple[Recommendation, ...] = ()
    recheck_after: float | None = None  # when time alone may change the decision


def decide(
    httpso: HTTPScaledObject,
    current: int,
    activity: Activity,
    history: tuple[Recommendation, ...],
    now: float,
    stabilization: float,
    floor: Floor | None = None,
) -> Decision:
    minimum = httpso.min_replicas
    why: str | None = None  # set when a warm window raises the minimum
    if floor is not None and floor.replicas > minimum:
        minimum, why = min(floor.replicas, httpso.max_replicas), floor.why
    low, high = max(1, minimum), httpso.max_replicas
    fresh = not history
    history = _prune(history, now, stabilization)

    def bounds(current: int, target: int) -> str:
        if why is not None:
            return f"Scaled from {current} to {target}: {why}"
        return _bounds_message(current, target)

    if not activity.connected:
        if (current > 0 or why is not None) and not minimum <= current <= high:
            bounded = min(max(current, minimum), high)
            return Decision(bounded, "Scaled", bounds(current, bounded), history)
        return Decision(None, history=history)

    if current == 0:
        if activity.active or minimum > 0:
            target = low
            if activity.active:
                return Decision(target, "Woken", woken_message(target), history)
            return Decision(target, "Scaled", bounds(0, target), history)
        return Decision(None, history=history)

    if not activity.active and minimum == 0 and not (activity.metric or 0.0) > 0:
        quiet_until = activity.quiet_since + httpso.scaledown_period
        cooldown_until = httpso.meta.creation_timestamp + httpso.initial_cooldown_period
        due = max(quiet_until, cooldown_until)
        if now >= due:
            return Decision(
                0,
                "ScaledToZero",
                f"Scaled from {current} to 0: no requests for "
                f"{now - activity.quiet_since:.0f}s (scaledownPeriod {httpso.scaledown_period}s)",
                (),
            )
        recheck: float | None = due - now
    else:
        recheck = None

    per_replica = httpso.scaling_metric.target_value
    # The small epsilon keeps 200.0000001 / 100 from becoming 3 replicas.
    wanted = current if activity.metric is None else math.ceil(activity.metric / per_replica - 1e-9)
    rec = min(max(wanted, low), high)
    if fresh:
        # Nothing remembered (a fresh start): the current replicas count as recommended now,
        # so a restart never shortcuts the window.
        history = (Recommendation(now, min(current, high)),)
    history = _record(history, Recommendation(now, rec))
    if rec > current:
        if wanted < low and why is not None:
            return Decision(rec, "Scaled", bounds(current, rec), history)
        return Decision(rec, "Scaled", _metric_message(current, rec, activity, httpso), history)
    stabilised = max(r.replicas for r in history)
    pending = _next_expiry(history, now, stabilization, rec)
    if stabilised < current:
        return Decision(
            stabilised,
            "Scaled",
            _metric_message(current, stabilised, activity, httpso),
            history,
            earliest(recheck, pending),
        )
    return Decision(None, history=history, recheck_after=earliest(recheck, pending))


def _prune(
    history: tuple[Recommendation, ...], now: float, window: float
) -> tuple[Recommendation, ...]:
    return tuple(r for r in history if r.at > now - window)


def _record(history: tuple[Recommendation, ...], rec: Recommendation) -> tuple[Recommendation, ...]:
    # Only the maximum over the window matters: an older recommendation not above a newer one
    # can never be that maximum again, so the history stays short (strictly decreasing).
    kept = tuple(r for r in history if r.replicas > rec.replicas)
    return (*kept, rec)


def _next_expiry(
    history: tuple[Recommendation, ...], now: float, window: float, rec: int
) -> float | None:
    """When the oldest recommendation above ``rec`` leaves the window, if there is one."""
    higher = [r for r in history if r.replicas > rec]
    if not higher:
        return None
    return max(0.0, higher[0].at + window - now)


def earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _bounds_message(current: int, target: int) -> str:
    return f"Scaled from {current} to {target}: the replicas must stay within min and max"


def _metric_message(current: int, target: int, activity: Activity, httpso: HTTPScaledObject) -> str:
    metric = httpso.scaling_metric
    value = 0.0 if activity.metric is None else activity.metric
    return (
        f"Scaled from {current} to {target}: {metric.kind} {value:g} "
        f"for a target of {metric.target_value:g} per replica"
    )


def woken_message(replicas: int) -> str:
    return f"Scaled from 0 to {replicas}: requests are waiting"
