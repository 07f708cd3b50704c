"""The scaler's aggregation core: sums, rate windows, restarts, stale replicas (table tests)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from wakeway.model.trigger import ALL_TARGETS, MetricTarget
from wakeway.scaler.aggregate import MAX_WINDOWS_PER_TARGET, Aggregator, RateWindow
from wakeway.scaler.wire import CountLine, Counts

pytestmark = pytest.mark.unit

A, B = "10.0.0.1:9090", "10.0.0.2:9090"
APP, API = "ns/app", "ns/api"
CONC = MetricTarget(APP, "concurrency", 10)
RATE = MetricTarget(APP, "requestRate", 10, window=10.0, granularity=1.0)


def c(in_flight: int = 0, requests: int = 0, held: int = 0) -> Counts:
    return Counts(in_flight, held, requests)


@dataclass(frozen=True)
class Line:
    """A test step: ``replica`` sends ``line`` at time ``t``."""

    t: float
    replica: str
    line: CountLine


def snap(t: float, replica: str, seq: int = 1, **targets: Counts) -> Line:
    return Line(t, replica, CountLine("snapshot", seq, _keys(targets)))


def change(t: float, replica: str, seq: int, **targets: Counts) -> Line:
    return Line(t, replica, CountLine("change", seq, _keys(targets)))


def beat(t: float, replica: str, seq: int) -> Line:
    return Line(t, replica, CountLine("heartbeat", seq))


def _keys(targets: dict[str, Counts]) -> dict[str, Counts]:
    return {f"ns/{k}": v for k, v in targets.items()}


def run(steps: list[Line], stale_after: float = 15.0) -> Aggregator:
    agg = Aggregator(stale_after)
    agg.watch(RATE, 0.0)  # the rate window exists from t=0
    for step in steps:
        agg.expire(step.t)
        agg.apply(step.replica, step.line, step.t)
    return agg


CONCURRENCY_CASES: list[tuple[str, list[Line], float, dict[str, int]]] = [
    ("one replica", [snap(0, A, app=c(3))], 0, {APP: 3, ALL_TARGETS: 3}),
    (
        "sum over replicas",
        [snap(0, A, app=c(3), api=c(1)), snap(0, B, app=c(4))],
        0,
        {APP: 7, API: 1, ALL_TARGETS: 8},
    ),
    (
        "a change replaces that replica's value",
        [snap(0, A, app=c(3)), snap(0, B, app=c(4)), change(1, A, 2, app=c(1))],
        1,
        {APP: 5},
    ),
    (
        "a snapshot replaces everything the replica said before",
        [snap(0, A, app=c(3), api=c(2)), snap(1, A, 1, app=c(1))],
        1,
        {APP: 1, API: 0},
    ),
    (
        "heartbeats keep a quiet replica",
        [snap(0, A, app=c(2)), beat(10, A, 1), beat(20, A, 1)],
        30,
        {APP: 2},
    ),
    (
        "a silent replica is dropped after the bound, the other stays",
        [snap(0, A, app=c(2)), snap(0, B, app=c(3)), beat(10, B, 1), beat(20, B, 1)],
        20,
        {APP: 3},
    ),
    ("a silent replica stands until the bound", [snap(0, A, app=c(2))], 15, {APP: 2}),
    ("unknown target", [snap(0, A, app=c(2))], 0, {"ns/other": 0}),
    ("no replicas", [], 0, {APP: 0, ALL_TARGETS: 0}),
]


@pytest.mark.parametrize(
    ("steps", "now", "expected"),
    [case[1:] for case in CONCURRENCY_CASES],
    ids=[case[0] for case in CONCURRENCY_CASES],
)
def test_concurrency(steps: list[Line], now: float, expected: dict[str, int]) -> None:
    agg = run(steps)
    agg.expire(now)
    assert {k: agg.concurrency(k) for k in expected} == expected


RATE_CASES: list[tuple[str, list[Line], float, float]] = [
    ("first snapshot is a baseline", [snap(0, A, app=c(0, 500))], 0.5, 0.0),
    ("deltas count", [snap(0, A, app=c(0, 500)), change(1, A, 2, app=c(0, 520))], 1.5, 2.0),
    (
        "deltas from two replicas add up",
        [
            snap(0, A, app=c(0, 100)),
            snap(0, B, app=c(0, 7)),
            change(1, A, 2, app=c(0, 110)),
            change(2, B, 2, app=c(0, 17)),
        ],
        2.5,
        2.0,
    ),
    (
        "requests age out of the window",
        [snap(0, A, app=c(0, 0)), change(1, A, 2, app=c(0, 30)), change(5, A, 3, app=c(0, 40))],
        12.0,
        1.0,
    ),
    (
        "window empty after it has passed",
        [snap(0, A, app=c(0, 0)), change(1, A, 2, app=c(0, 30))],
        11.0,
        0.0,
    ),
    (
        "a restart (counter went down) counts the new value, never negative",
        [snap(0, A, app=c(0, 1000)), change(1, A, 2, app=c(0, 1010)), snap(2, A, 1, app=c(0, 5))],
        2.5,
        1.5,
    ),
    (
        "a reconnect to the same process counts only what happened meanwhile",
        [snap(0, A, app=c(0, 1000)), snap(3, A, 1, app=c(0, 1004))],
        3.5,
        0.4,
    ),
    (
        "a dropped replica's past requests stay in the window",
        [snap(0, A, app=c(0, 0)), change(1, A, 2, app=c(0, 50)), snap(1, B, app=c(0, 0))]
        + [beat(t, B, 1) for t in (5.0, 7.0)],
        9.5,
        5.0,
    ),
    (
        "a replica that comes back after being dropped is a new baseline (no double count)",
        [snap(0, A, app=c(0, 0)), change(1, A, 2, app=c(0, 50)), snap(3, B, app=c(0, 0))]
        + [beat(t, B, 1) for t in (6.0, 10.0, 14.0, 17.0)]
        + [snap(18, A, 1, app=c(0, 80))],
        18.5,
        0.0,
    ),
    (
        "a target new to a known replica counts all its requests",
        [snap(0, A, api=c(0, 3)), change(1, A, 2, app=c(1, 1))],
        1.5,
        0.1,
    ),
]


@pytest.mark.parametrize(
    ("steps", "now", "expected"),
    [case[1:] for case in RATE_CASES],
    ids=[case[0] for case in RATE_CASES],
)
def test_request_rate(steps: list[Line], now: float, expected: float) -> None:
    agg = run(steps, stale_after=5.0)  # shorter than the window: drops happen within it
    agg.expire(now)
    assert agg.rate(RATE, now) == pytest.approx(expected)


def test_rate_counts_only_from_the_first_ask() -> None:
    agg = Aggregator(15.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c(0, 0)}), 0.0)
    agg.apply(A, CountLine("change", 2, {APP: c(0, 10)}), 1.0)
    other = MetricTarget(APP, "requestRate", 10, window=4.0, granularity=1.0)
    assert agg.rate(other, 1.0) == 0.0
    agg.apply(A, CountLine("change", 3, {APP: c(0, 18)}), 2.0)
    assert agg.rate(other, 2.0) == pytest.approx(2.0)
    assert agg.rate(RATE, 2.0) == 0.0  # first asked now


@pytest.mark.parametrize(
    ("window", "granularity", "adds", "now", "total"),
    [
        (10.0, 1.0, [(0.0, 1), (9.5, 1)], 9.9, 2),
        (10.0, 1.0, [(0.0, 1), (9.5, 1)], 10.0, 1),  # bucket 0 left the window
        (10.0, 2.0, [(0.0, 1), (1.9, 1), (2.0, 1)], 11.9, 1),
        (1.0, 1.0, [(0.2, 3), (0.7, 4)], 0.9, 7),
        (1.0, 1.0, [(0.2, 3)], 1.0, 0),
        (3.0, 1.0, [(5.0, 1), (4.0, 2)], 5.5, 3),  # a step back lands in the newest bucket
        (10.0, 1.0, [(0.0, 0), (1.0, -3)], 1.5, 0),  # nothing negative is recorded
    ],
)
def test_rate_window_buckets(
    window: float, granularity: float, adds: list[tuple[float, int]], now: float, total: int
) -> None:
    w = RateWindow(window, granularity, 0.0)
    for t, n in adds:
        w.add(t, n)
    assert w.total(now) == total


def test_active() -> None:
    agg = Aggregator(15.0)
    agg.watch(RATE, 0.0)
    assert not agg.active(CONC, 0.0)
    assert not agg.active(RATE, 0.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c(0, 0)}), 0.0)
    changed = agg.apply(A, CountLine("change", 2, {APP: c(1, 1, held=1)}, wake=True), 1.0)
    assert changed.changed == {APP, ALL_TARGETS}
    assert agg.active(CONC, 1.0)
    assert agg.active(RATE, 1.0)
    assert agg.held(APP) == 1
    agg.apply(A, CountLine("change", 3, {APP: c(0, 1)}), 2.0)
    assert not agg.active(CONC, 2.0)
    assert agg.active(RATE, 2.0)  # the request is still in the rate window
    assert not agg.active(RATE, 11.0)


@pytest.mark.parametrize(
    ("lines", "resync"),
    [
        ([CountLine("change", 1, {APP: c(1)})], True),  # a change before any snapshot
        ([CountLine("heartbeat", 0)], True),
        ([CountLine("snapshot", 1, {}), CountLine("change", 3, {APP: c(1)})], True),  # a gap
        ([CountLine("snapshot", 1, {}), CountLine("heartbeat", 2)], True),
        ([CountLine("snapshot", 1, {}), CountLine("change", 2, {APP: c(1)})], False),
        ([CountLine("snapshot", 1, {}), CountLine("heartbeat", 1)], False),
        ([CountLine("snapshot", 5, {}), CountLine("change", 6, {})], False),
    ],
)
def test_out_of_step_streams_ask_for_a_resync(lines: list[CountLine], resync: bool) -> None:
    agg = Aggregator(15.0)
    results = [agg.apply(A, line, 0.0).resync for line in lines]
    assert results[-1] is resync
    assert not any(results[:-1])


def test_a_gap_does_not_apply_the_change() -> None:
    agg = Aggregator(15.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c(1)}), 0.0)
    agg.apply(A, CountLine("change", 5, {APP: c(9)}), 0.0)
    assert agg.concurrency(APP) == 1


def test_expiry_reports_changes_and_next_deadline() -> None:
    agg = Aggregator(5.0)
    assert agg.next_expiry() is None
    agg.apply(A, CountLine("snapshot", 1, {APP: c(2)}), 0.0)
    agg.apply(B, CountLine("snapshot", 1, {API: c(0)}), 3.0)
    assert agg.next_expiry() == 5.0
    assert agg.expire(5.0) == frozenset()  # strictly after the bound
    assert agg.expire(5.1) == {APP, ALL_TARGETS}
    assert agg.replicas == {B}
    assert agg.next_expiry() == 8.0
    assert agg.drop(B) == frozenset()  # nothing in flight there
    assert agg.replicas == frozenset()


def test_idle_rate_windows_are_forgotten_and_bounded() -> None:
    agg = Aggregator(5.0, window_idle=100.0)
    for i in range(MAX_WINDOWS_PER_TARGET + 2):
        agg.watch(MetricTarget(APP, "requestRate", 1, window=10.0 + i, granularity=1.0), 0.0)
    assert len(agg._windows[APP]) == MAX_WINDOWS_PER_TARGET
    agg.watch(RATE, 50.0)
    agg.expire(120.0)
    assert list(agg._windows[APP]) == [(RATE.window, RATE.granularity)]
    agg.expire(200.0)
    assert APP not in agg._windows
