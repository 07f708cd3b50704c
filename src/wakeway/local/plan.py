"""The local operator's decisions, pure: when to start and when to stop each workload.

``plan(state, now)`` takes what is known about one workload and returns the one action to take
now (or none) and the time at which the decision may change without any new event, so the
shell sleeps on a timer, never polls.

Restarts back off: after a failed start, or an exit the runner did not ask for, the next start
waits ``restart_delay(failures)``, doubling from ``RESTART_DELAY_MIN`` to ``RESTART_DELAY_MAX``
(below the default ``conditionWait``, so a held request still sees the next attempt). The count
starts again after a run that stayed ready for ``HEALTHY_RUN`` or ended because it was asked to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from wakeway.model.warm import WarmWindow, warmth

RESTART_DELAY_MIN = 0.5  # seconds before the start after one failure
RESTART_DELAY_MAX = 10.0
HEALTHY_RUN = 10.0  # ready this long: the next failure counts as the first


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
    not_before: float = 0.0  # restart backoff: no start before this time


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action | None
    recheck_at: float | None  # when to plan again if nothing else happens


@dataclass(frozen=True, slots=True)
class Warm:
    """What a workload's warm windows say now: run it, and when to look again."""

    in_force: bool
    recheck_at: float | None  # on the runner's clock


def warm_windows(windows: Sequence[WarmWindow], wall: float, now: float) -> Warm:
    """The windows read at wall-clock time ``wall`` (epoch seconds); ``now`` is the runner's
    own clock at the same moment, which the recheck time is given on."""
    if not windows:
        return Warm(False, None)
    state = warmth(windows, wall)
    due = None if state.next_change is None else now + max(0.0, state.next_change - wall)
    return Warm(state.floor > 0, due)


def restart_delay(failures: int) -> float:
    """How long to wait before the next start after ``failures`` failures in a row."""
    if failures <= 0:
        return 0.0
    return min(RESTART_DELAY_MAX, RESTART_DELAY_MIN * 2.0 ** min(failures - 1, 32))


def failures_after_exit(failures: int, ran_for: float) -> int:
    """Failures in a row once a ready process exited unasked after ``ran_for`` seconds."""
    return 1 if ran_for >= HEALTHY_RUN else failures + 1


def plan(state: WorkloadState, now: float) -> Decision:
    if state.phase is Phase.STOPPED:
        if state.in_flight > 0 or state.keep_warm:
            if now < state.not_before:
                return Decision(None, state.not_before)
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
