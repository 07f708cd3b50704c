"""Standalone scaling decisions: wake, 1 -> N, stabilised scale-down, scale to zero, cooldowns."""

from __future__ import annotations

from typing import Any

import pytest

from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.operator.scaling import Activity, Decision, Floor, Recommendation, decide

pytestmark = pytest.mark.unit

CREATED = 1_000.0
WINDOW = 300.0


def httpso(**spec: Any) -> HTTPScaledObject:
    doc = {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {
            "name": "web",
            "namespace": "apps",
            "uid": "u-1",
            "creationTimestamp": "1970-01-01T00:16:40Z",  # CREATED
        },
        "spec": {
            "scaleTargetRef": {"name": "web", "service": "web", "port": 80},
            "scaledownPeriod": 60,
            "scalingMetric": {"concurrency": {"targetValue": 10}},
            **spec,
        },
    }
    return parse_httpscaledobject(doc)


def up(active: bool, metric: float | None = None, quiet_since: float = CREATED) -> Activity:
    return Activity(connected=True, active=active, quiet_since=quiet_since, metric=metric)


DOWN = Activity(connected=False, active=False, quiet_since=CREATED)
NOW = 5_000.0


@pytest.mark.parametrize(
    ("spec", "current", "activity", "expected_replicas", "expected_reason"),
    [
        # At zero: the stream saying active wakes to max(1, min) at once.
        ({}, 0, up(True), 1, "Woken"),
        ({"replicas": {"min": 0, "max": 5}}, 0, up(True, metric=500), 1, "Woken"),
        ({"replicas": {"min": 3, "max": 5}}, 0, up(True), 3, "Woken"),
        # At zero and idle: stays, unless min > 0.
        ({}, 0, up(False), None, ""),
        ({"replicas": {"min": 2, "max": 5}}, 0, up(False), 2, "Scaled"),
        # Scaler unreachable: never wakes nor sleeps on no information...
        ({}, 0, DOWN, None, ""),
        ({}, 3, DOWN, None, ""),
        # ... but replicas above zero are brought back within [min, max].
        ({"replicas": {"min": 0, "max": 2}}, 5, DOWN, 2, "Scaled"),
        # 1 -> N: ceil(metric / target), bounded by max, applied at once.
        ({}, 1, up(True, metric=35), 4, "Scaled"),
        ({}, 1, up(True, metric=30), 3, "Scaled"),
        ({"replicas": {"max": 3}}, 1, up(True, metric=1000), 3, "Scaled"),
        ({}, 4, up(True, metric=40), None, ""),
        # The metric below one replica's worth keeps max(1, min) while active.
        ({}, 1, up(True, metric=0), None, ""),
        ({"replicas": {"min": 2, "max": 5}}, 1, up(True, metric=1), 2, "Scaled"),
    ],
)
def test_decisions(
    spec: dict[str, Any],
    current: int,
    activity: Activity,
    expected_replicas: int | None,
    expected_reason: str,
) -> None:
    d = decide(httpso(**spec), current, activity, (), NOW, WINDOW)
    assert (d.replicas, d.reason) == (expected_replicas, expected_reason)


def test_request_rate_metric_uses_its_own_target() -> None:
    so = httpso(scalingMetric={"requestRate": {"targetValue": 50, "window": "1m"}})
    assert decide(so, 1, up(True, metric=120), (), NOW, WINDOW).replicas == 3


def test_scale_to_zero_after_the_scaledown_period_only() -> None:
    so = httpso()  # scaledownPeriod 60
    quiet = up(False, metric=0, quiet_since=NOW - 59)
    d = decide(so, 2, quiet, (), NOW, WINDOW)
    assert d.replicas != 0
    assert d.recheck_after == pytest.approx(1.0)
    d = decide(so, 2, up(False, metric=0, quiet_since=NOW - 60), (), NOW, WINDOW)
    assert (d.replicas, d.reason, d.history) == (0, "ScaledToZero", ())


def test_no_scale_to_zero_with_requests_in_flight_or_min_above_zero() -> None:
    long_ago = NOW - 10_000
    # The stream says active: something is in flight.
    assert decide(httpso(), 1, up(True, 5, long_ago), (), NOW, WINDOW).replicas is None
    # Inactive but a rate still measured (requests finished within the window).
    assert decide(httpso(), 1, up(False, 3, long_ago), (), NOW, WINDOW).replicas is None
    so = httpso(replicas={"min": 1, "max": 5})
    assert decide(so, 1, up(False, 0, long_ago), (), NOW, WINDOW).replicas is None


def test_initial_cooldown_holds_off_scale_to_zero() -> None:
    so = httpso(initialCooldownPeriod=600)  # until CREATED + 600
    now = CREATED + 500
    d = decide(so, 1, up(False, 0, quiet_since=CREATED), (), now, WINDOW)
    assert d.replicas is None
    assert d.recheck_after == pytest.approx(100.0)
    d = decide(so, 1, up(False, 0, quiet_since=CREATED), (), CREATED + 600, WINDOW)
    assert d.replicas == 0


def test_scale_down_is_stabilised_over_the_window() -> None:
    so = httpso(replicas={"min": 0, "max": 10})
    t0 = NOW
    # Load rises: 5 replicas at once.
    d = decide(so, 1, up(True, 50), (), t0, WINDOW)
    assert d.replicas == 5
    history = d.history
    # Load falls: the recommendation is 2, but 5 was recommended within the window.
    d = decide(so, 5, up(True, 20), history, t0 + 10, WINDOW)
    assert d.replicas is None
    assert d.recheck_after == pytest.approx(WINDOW - 10)
    history = d.history
    # Once the 5 has left the window, the highest remaining recommendation applies.
    d = decide(so, 5, up(True, 20), history, t0 + WINDOW + 1, WINDOW)
    assert (d.replicas, d.reason) == (2, "Scaled")


def test_scale_down_takes_the_highest_recommendation_in_the_window() -> None:
    so = httpso(replicas={"min": 0, "max": 10})
    history = (Recommendation(NOW - 250, 8), Recommendation(NOW - 100, 6))
    d = decide(so, 8, up(True, 20), history, NOW, WINDOW)
    assert d.replicas is None  # 8 is still in the window
    d = decide(so, 8, up(True, 20), history, NOW + 60, WINDOW)
    assert d.replicas == 6  # 8 left the window; 6 has not


def test_history_stays_short() -> None:
    so = httpso(replicas={"min": 0, "max": 100})
    history: tuple[Recommendation, ...] = ()
    for i in range(1000):
        d = decide(so, 50, up(True, float(i % 7) * 10), history, NOW + i, WINDOW)
        history = d.history
    # Strictly decreasing replicas: never more entries than distinct values.
    assert len(history) <= 7
    assert [r.replicas for r in history] == sorted({r.replicas for r in history}, reverse=True)


def test_scale_up_is_never_delayed_by_the_window() -> None:
    so = httpso(replicas={"min": 0, "max": 10})
    history = (Recommendation(NOW - 1, 2),)
    assert decide(so, 2, up(True, 90), history, NOW, WINDOW) == Decision(
        9,
        "Scaled",
        "Scaled from 2 to 9: concurrency 90 for a target of 10 per replica",
        (Recommendation(NOW, 9),),
    )


def test_a_fresh_start_does_not_shortcut_the_window() -> None:
    so = httpso(replicas={"min": 0, "max": 10})
    d = decide(so, 6, up(True, 10), (), NOW, WINDOW)
    assert d.replicas is None
    assert d.recheck_after == pytest.approx(WINDOW)
    assert decide(so, 6, up(True, 10), d.history, NOW + WINDOW, WINDOW).replicas == 1


BOUNDS = "the replicas must stay within min and max"
EARLIER = (Recommendation(NOW - 10, 4),)  # one recommendation still inside the window
WARM = Floor(2, "warm window 'mornings'")


def metric_msg(current: int, target: int, value: str) -> str:
    return f"Scaled from {current} to {target}: concurrency {value} for a target of 10 per replica"


@pytest.mark.parametrize(
    ("spec", "current", "activity", "floor", "expected"),
    [
        # Scaler unreachable: only replicas above zero are brought inside [min, max].
        (
            {"replicas": {"min": 0, "max": 2}},
            5,
            DOWN,
            None,
            Decision(2, "Scaled", f"Scaled from 5 to 2: {BOUNDS}", EARLIER),
        ),
        (
            {"replicas": {"min": 2, "max": 5}},
            1,
            DOWN,
            None,
            Decision(2, "Scaled", f"Scaled from 1 to 2: {BOUNDS}", EARLIER),
        ),
        ({"replicas": {"min": 2, "max": 5}}, 0, DOWN, None, Decision(None, history=EARLIER)),
        ({"replicas": {"min": 2, "max": 5}}, 2, DOWN, None, Decision(None, history=EARLIER)),
        ({"replicas": {"min": 0, "max": 5}}, 5, DOWN, None, Decision(None, history=EARLIER)),
        # A warm window at zero wakes even before the stream answers, and says why...
        ({}, 0, DOWN, WARM, Decision(2, "Scaled", f"Scaled from 0 to 2: {WARM.why}", EARLIER)),
        # ... but a floor no higher than min changes nothing and explains nothing.
        ({"replicas": {"min": 2, "max": 5}}, 0, DOWN, WARM, Decision(None, history=EARLIER)),
        # At zero.
        (
            {},
            0,
            up(True),
            None,
            Decision(1, "Woken", "Scaled from 0 to 1: requests are waiting", EARLIER),
        ),
        (
            {"replicas": {"min": 1, "max": 5}},
            0,
            up(False),
            None,
            Decision(1, "Scaled", f"Scaled from 0 to 1: {BOUNDS}", EARLIER),
        ),
        ({}, 0, up(False), None, Decision(None, history=EARLIER)),
        # Quiet for the scaledownPeriod (60 s): to zero, saying for how long.
        (
            {},
            2,
            up(False, metric=0, quiet_since=NOW - 75),
            None,
            Decision(
                0, "ScaledToZero", "Scaled from 2 to 0: no requests for 75s (scaledownPeriod 60s)"
            ),
        ),
        # Inactive with a small rate still measured: no scale to zero.
        (
            {},
            1,
            up(False, metric=0.5, quiet_since=NOW - 1000),
            None,
            Decision(
                None,
                history=(Recommendation(NOW - 10, 4), Recommendation(NOW, 1)),
                recheck_after=290.0,
            ),
        ),
        # Up to min with no metric yet: the metric is read as 0.
        (
            {"replicas": {"min": 3, "max": 5}},
            1,
            up(True),
            None,
            Decision(
                3,
                "Scaled",
                metric_msg(1, 3, "0"),
                (Recommendation(NOW - 10, 4), Recommendation(NOW, 3)),
            ),
        ),
        # A warm window's floor above what the metric asks: the floor's reason.
        (
            {},
            1,
            up(True, metric=10),
            WARM,
            Decision(
                2,
                "Scaled",
                f"Scaled from 1 to 2: {WARM.why}",
                (Recommendation(NOW - 10, 4), Recommendation(NOW, 2)),
            ),
        ),
        # The metric asking exactly the floor, or more: the metric's reason.
        (
            {},
            1,
            up(True, metric=20),
            WARM,
            Decision(
                2,
                "Scaled",
                metric_msg(1, 2, "20"),
                (Recommendation(NOW - 10, 4), Recommendation(NOW, 2)),
            ),
        ),
        (
            {},
            1,
            up(True, metric=50),
            WARM,
            Decision(5, "Scaled", metric_msg(1, 5, "50"), (Recommendation(NOW, 5),)),
        ),
        # Down to the highest recommendation in the window, and when to look again.
        (
            {"replicas": {"min": 0, "max": 10}},
            6,
            up(True, metric=20),
            None,
            Decision(
                4,
                "Scaled",
                metric_msg(6, 4, "20"),
                (Recommendation(NOW - 10, 4), Recommendation(NOW, 2)),
                290.0,
            ),
        ),
    ],
)
def test_each_decision_whole(
    spec: dict[str, Any], current: int, activity: Activity, floor: Floor | None, expected: Decision
) -> None:
    assert decide(httpso(**spec), current, activity, EARLIER, NOW, WINDOW, floor) == expected


def test_a_recommendation_about_to_leave_the_window_is_looked_at_again_then() -> None:
    so = httpso(replicas={"min": 0, "max": 10})
    history = (Recommendation(NOW - WINDOW + 0.5, 6),)
    d = decide(so, 6, up(True, metric=20), history, NOW, WINDOW)
    assert d.replicas is None
    assert d.recheck_after == pytest.approx(0.5)
