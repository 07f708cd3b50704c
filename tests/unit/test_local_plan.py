"""The local operator's pure decisions."""

from __future__ import annotations

import pytest

from wakeway.local.plan import (
    Action,
    Decision,
    Phase,
    Warm,
    WorkloadState,
    failures_after_exit,
    plan,
    restart_delay,
    warm_windows,
)
from wakeway.model.cron import parse_cron
from wakeway.model.warm import WarmWindow

pytestmark = pytest.mark.unit


def state(
    phase: Phase, in_flight: int = 0, idle_since: float | None = None, **kw: object
) -> WorkloadState:
    return WorkloadState(phase, in_flight, idle_since, scaledown_period=30.0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "now", "expected"),
    [
        # Stopped: a request (held) starts it; nothing else does, unless min replicas >= 1.
        (state(Phase.STOPPED), 100.0, Decision(None, None)),
        (state(Phase.STOPPED, in_flight=1), 100.0, Decision(Action.START, None)),
        (state(Phase.STOPPED, keep_warm=True), 100.0, Decision(Action.START, None)),
        # Starting or stopping: the transition finishes first, whatever arrives.
        (state(Phase.STARTING, in_flight=5), 100.0, Decision(None, None)),
        (state(Phase.STOPPING, in_flight=5), 100.0, Decision(None, None)),
        (state(Phase.STOPPING), 100.0, Decision(None, None)),
        # Ready and busy: stays.
        (state(Phase.READY, in_flight=1, idle_since=0.0), 100.0, Decision(None, None)),
        # Ready and idle: stops after the quiet period, and says when to look again before.
        (state(Phase.READY, idle_since=90.0), 100.0, Decision(None, 120.0)),
        (state(Phase.READY, idle_since=90.0), 120.0, Decision(Action.STOP, None)),
        (state(Phase.READY, idle_since=None), 100.0, Decision(None, 130.0)),
        # initialCooldownPeriod holds off the first scale-down.
        (state(Phase.READY, idle_since=0.0, cooldown_until=200.0), 100.0, Decision(None, 200.0)),
        (
            state(Phase.READY, idle_since=0.0, cooldown_until=200.0),
            200.0,
            Decision(Action.STOP, None),
        ),
        # min replicas >= 1 never stops.
        (state(Phase.READY, idle_since=0.0, keep_warm=True), 1e9, Decision(None, None)),
        # A workload whose spec changed on reload is replaced as soon as it is idle.
        (state(Phase.READY, idle_since=99.0, stale=True), 100.0, Decision(Action.STOP, None)),
        (state(Phase.READY, in_flight=2, stale=True), 100.0, Decision(None, None)),
        # Restart backoff: no start before not_before, whoever asks; a timer for it.
        (state(Phase.STOPPED, keep_warm=True, not_before=101.0), 100.0, Decision(None, 101.0)),
        (state(Phase.STOPPED, in_flight=3, not_before=101.0), 100.0, Decision(None, 101.0)),
        (state(Phase.STOPPED, not_before=101.0), 100.0, Decision(None, None)),
        (
            state(Phase.STOPPED, in_flight=1, not_before=101.0),
            101.0,
            Decision(Action.START, None),
        ),
    ],
)
def test_plan(given: WorkloadState, now: float, expected: Decision) -> None:
    assert plan(given, now) == expected


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0.0), (1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (6, 10.0), (60, 10.0), (10_000, 10.0)],
)
def test_restart_delay_doubles_up_to_its_cap(failures: int, delay: float) -> None:
    assert restart_delay(failures) == delay


@pytest.mark.parametrize(
    ("failures", "ran_for", "after"),
    [
        (0, 0.1, 1),  # ready, then exited at once: one failure
        (4, 9.9, 5),  # still crash looping
        (4, 10.0, 1),  # a healthy run: counting starts again
        (4, 3600.0, 1),
    ],
)
def test_failures_after_an_unasked_exit(failures: int, ran_for: float, after: int) -> None:
    assert failures_after_exit(failures, ran_for) == after


def test_warm_windows_keep_it_running_and_say_when_to_look_again() -> None:
    # Every day at 00:10 UTC for 5 minutes, woken 1 minute early: 00:09-00:15 (epoch day 0).
    window = WarmWindow(parse_cron("10 0 * * *", "s"), 300.0, lead_time=60.0)
    mono = 1000.0  # the runner's own clock, offset from the wall clock
    assert warm_windows((), 0.0, mono) == Warm(False, None)
    assert warm_windows((window,), 8 * 60, mono) == Warm(False, mono + 60)
    assert warm_windows((window,), 9 * 60, mono) == Warm(True, mono + 6 * 60)
    assert warm_windows((window,), 15 * 60, mono) == Warm(False, mono + 86400 - 6 * 60)
    # In force, a window is what keeps a stopped workload starting and a ready one running.
    assert plan(state(Phase.STOPPED, keep_warm=True), 0.0).action is Action.START
