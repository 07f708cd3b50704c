"""bench_wake's verdict: wakeway's share of a wake against its p99 goal."""

from __future__ import annotations

import pytest
from loadtest.bench_wake import GOAL_HOP, goal_met

pytestmark = pytest.mark.unit


def share(values: list[float]) -> dict[str, list[float]]:
    return {GOAL_HOP: values, "baseline: the /scale patch alone": [5.0] * len(values)}


def test_met_when_the_p99_is_within_the_goal() -> None:
    ok, line = goal_met(share([1.0] * 99 + [10.0]), 10.0)
    assert ok
    assert line == f"goal met: {GOAL_HOP} p99 1.00 ms (goal <= 10 ms)"


def test_missed_when_more_than_one_in_a_hundred_is_slower() -> None:
    ok, line = goal_met(share([1.0] * 98 + [11.0, 12.0]), 10.0)
    assert not ok
    assert line == f"goal NOT met: {GOAL_HOP} p99 11.00 ms (goal <= 10 ms)"


def test_no_wake_measured_is_not_met() -> None:
    ok, _ = goal_met(share([]), 10.0)
    assert not ok
