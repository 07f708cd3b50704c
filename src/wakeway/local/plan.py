"""The local operator's decisions, pure: when to start and when to stop each workload.

``plan(state, now)`` takes what is known about one workload and returns the one action to take
now (or none) and the time at which the decision may change without any new event, so the
shell sleeps on a timer, never polls.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"


class Action(Enum):
    START = "start"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class WorkloadState:
    phase: Phase
    in_flight: int  # held + forwarding, summed over every target of the workload
    idle_since: float | None  # when in_flight last fell to 0 (None: busy, or never started)
    scaledown_period: float  # the longest of its targets' scaledownPeriod
    keep_warm: bool = False  # some target asks for replicas.min >= 1
    cooldown_until: float = 0.0  # initialCooldownPeriod: no scale-down before this time
    stale: bool = False  # its spec changed on reload: replace it once it is idle


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action | None
    recheck_at: float | None  # when to plan again if nothing else happens


def plan(state: WorkloadState, now: float) -> Decision:
    if state.phase is Phase.STOPPED:
        if state.in_flight > 0 or state.keep_warm:
            return Decision(Action.START, None)
        return Decision(None, None)
    if state.phase is not Phase.READY:
        return Decision(None, None)  # starting or stopping: wait for that to finish
    if state.in_flight > 0:
        return Decision(None, None)
    if state.stale:
        return Decision(Action.STOP, None)
    if state.keep_warm:
        return Decision(None, None)
    idle_since = now if state.idle_since is None else state.idle_since
    due = max(idle_since + state.scaledown_period, state.cooldown_until)
    if now >= due:
        return Decision(Action.STOP, None)
    return Decision(None, due)
