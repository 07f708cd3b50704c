"""The scaler's aggregation core: sums, rate windows, restarts, stale replicas (table tests)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from wakeway.model.trigger import ALL_TARGETS, MetricTarget
from wakeway.scaler.aggregate import MAX_WINDOWS_PER_TARGET, Aggregator, Applied, RateWindow
from wakeway.scaler.live import LiveCounts
from wakeway.scaler.wire import CountLine, Counts

pytestmark = pytest.mark.unit

A, B = "10.0.0.1:9090", "10.0.0.2:9090"
APP, API = "ns/app", "ns/api"
CONC = MetricTarget(APP, "concurrency", 10)
RATE = MetricTarget(APP, "requestRate", 10, window=10.0, granularity=1.0)


def c(in_flight: int = 0, requests: int = 0, held: int = 0, busy: float = 0.0) -> Counts:
    return Counts(in_flight, held, requests, busy)


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
    assert agg.active(CONC, 2.0)  # the request just ended: the activity window runs
    assert agg.active_until(CONC, 2.0) == 2.0 + CONC.activity_window
    assert not agg.active(CONC, 2.0 + CONC.activity_window)
    assert agg.active_until(CONC, 2.0 + CONC.activity_window) is None
    assert agg.active(RATE, 5.0)  # the request is still in the rate window
    assert not agg.active(RATE, 11.0)


S0 = snap(0.0, A, app=c(0, 0))
SHORT = change(0.2, A, 2, app=c(0, 5))
ACTIVITY_CASES = [
    # (lines, when asked, active?) for a concurrency target with a 1 s activity window.
    pytest.param([], 0.5, False, id="nothing-seen"),
    # Requests that began and ended between two lines: inFlight stays 0, the counter rises.
    pytest.param([S0, SHORT], 1.1, True, id="short"),
    pytest.param([S0, SHORT], 1.2, False, id="aged"),
    # The first snapshot from a replica is a baseline: its past requests are not activity.
    pytest.param([snap(0.0, A, app=c(0, 500))], 0.1, False, id="baseline"),
    # A restarted replica (its counter went down) with new requests is active.
    pytest.param(
        [snap(0.0, A, app=c(0, 9)), change(0.5, A, 2, app=c(0, 2))], 1.0, True, id="restart"
    ),
    # In flight: active however long ago it began.
    pytest.param([S0, change(0.1, A, 2, app=c(1, 1))], 500.0, True, id="open"),
    # Another target's traffic is not ours.
    pytest.param(
        [snap(0.0, A, api=c(0, 0)), change(0.2, A, 2, api=c(0, 5))], 0.5, False, id="other"
    ),
    # Two replicas: one idle, one with short requests.
    pytest.param(
        [snap(0.0, A, app=c(0, 3)), snap(0.0, B, app=c(0, 0)), change(3.0, B, 2, app=c(0, 1))],
        3.5,
        True,
        id="two-replicas",
    ),
]


@pytest.mark.parametrize(("lines", "at", "active"), ACTIVITY_CASES)
def test_activity_follows_requests_not_samples(lines: list[Line], at: float, active: bool) -> None:
    agg = Aggregator(15.0)
    for step in lines:
        agg.apply(step.replica, step.line, step.t)
    assert agg.active(CONC, at) is active


def test_steady_short_requests_stay_active_for_every_instant() -> None:
    """50 req/s of 1 ms requests, one line per 5 ms batch: active at every instant asked."""
    agg = Aggregator(15.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c()}), 0.0)
    for tick in range(1, 1001):  # 20 s of traffic, one request per tick
        t = tick * 0.02
        agg.apply(A, CountLine("change", tick + 1, {APP: c(0, tick, busy=tick * 0.001)}), t)
        assert agg.concurrency(APP) == 0
        assert agg.active(CONC, t + 0.019)
    last = 1000 * 0.02
    assert not agg.active(CONC, last + CONC.activity_window)


def test_concurrency_metric_is_the_time_average_or_what_is_in_flight_if_more() -> None:
    target = MetricTarget(APP, "concurrency", 10, window=10.0, granularity=1.0)
    agg = Aggregator(15.0)
    agg.watch(target, 0.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c()}), 0.0)
    seq = 1
    # 100 req/s of 50 ms requests (five in flight on average), reported every 10 ms: the
    # interceptor's busy integral rises by 0.05 per 10 ms.
    for tick in range(1, 1001):
        seq += 1
        agg.apply(A, CountLine("change", seq, {APP: c(0, tick, busy=tick * 0.05)}), tick * 0.01)
    assert agg.value(target, 10.0) == pytest.approx(5.0, rel=0.1)
    # Open requests count at once, whatever the average says.
    seq += 1
    agg.apply(A, CountLine("change", seq, {APP: c(40, 1040, busy=50.0)}), 10.0)
    assert agg.value(target, 10.0) == 40.0
    # Long after everything ended, the average has aged out.
    seq += 1
    agg.apply(A, CountLine("change", seq, {APP: c(0, 1040, busy=50.0)}), 10.5)
    assert agg.value(target, 40.0) == 0.0


def test_a_long_request_reported_at_its_end_adds_only_its_time_inside_the_window() -> None:
    target = MetricTarget(APP, "concurrency", 10, window=10.0, granularity=1.0)
    agg = Aggregator(15.0)
    agg.watch(target, 0.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c()}), 0.0)
    agg.apply(A, CountLine("change", 2, {APP: c(1, 1)}), 0.0)
    assert agg.value(target, 20.0) == 1.0  # in flight, never reported since
    agg.apply(A, CountLine("change", 3, {APP: c(0, 1, busy=30.0)}), 30.0)
    # It was in flight for the whole last 10 s (one request on average), not 30 s worth.
    assert agg.value(target, 30.0) == pytest.approx(1.0, rel=0.11)


@pytest.mark.parametrize(
    ("start", "end", "amount", "now", "total"),
    [
        (0.0, 0.5, 2.0, 0.5, 2.0),  # inside one bucket
        (0.0, 4.0, 4.0, 4.0, 4.0),  # four buckets, all inside the window
        (0.0, 20.0, 20.0, 20.0, 9.0),  # the part inside the window (the current bucket is new)
        (5.0, 5.0, 1.0, 5.0, 1.0),  # no time passed: all of it now
    ],
)
def test_rate_window_spreads_an_amount_over_its_interval(
    start: float, end: float, amount: float, now: float, total: float
) -> None:
    w = RateWindow(10.0, 1.0, 0.0)
    w.add_spread(start, end, amount)
    assert w.total(now) == pytest.approx(total)


@pytest.mark.parametrize(
    ("window", "granularity", "start", "end", "amount", "total", "rate"),
    [
        # 1 s window of two 0.5 s buckets: 0.9..1.6 puts 0.1 in bucket 1 (gone by 1.6), 0.5 in
        # bucket 2 and 0.1 in bucket 3, though the interval is shorter than a second.
        (1.0, 0.5, 0.9, 1.6, 0.7, 0.6, 0.6),
        (10.0, 0.5, 0.9, 1.6, 0.7, 0.7, 0.07),  # all of it inside a wide window
        # 4 s window of two 2 s buckets: 1..5 gives bucket 1 [2, 4) 4 and bucket 2 [4, 6) 2;
        # bucket 0 [0, 2) would get 2 but it is out of the window
        (4.0, 2.0, 1.0, 5.0, 8.0, 6.0, 1.5),
        (4.0, 2.0, 4.2, 5.8, 1.0, 1.0, 0.25),  # inside one 2 s bucket
    ],
)
def test_rate_window_spreads_by_its_granularity(
    window: float,
    granularity: float,
    start: float,
    end: float,
    amount: float,
    total: float,
    rate: float,
) -> None:
    w = RateWindow(window, granularity, 0.0)
    w.add_spread(start, end, amount)
    assert w.total(end) == pytest.approx(total)
    assert w.rate(end) == pytest.approx(rate)  # per second over the whole window


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
    kept = [spec[1] for spec in agg._windows[APP]]
    assert kept == [10.0 + i for i in range(2, MAX_WINDOWS_PER_TARGET + 2)]  # the newest
    agg.watch(RATE, 50.0)
    agg.expire(120.0)
    assert list(agg._windows[APP]) == [(RATE.kind, RATE.window, RATE.granularity)]
    agg.expire(200.0)
    assert APP not in agg._windows


def test_a_wake_is_seen_once_whatever_line_brings_it() -> None:
    agg = Aggregator(15.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c()}), 0.0)
    assert agg.take_woken() == frozenset()
    agg.apply(A, CountLine("change", 2, {APP: c(1, 1, held=1)}, wake=True), 0.1)
    assert agg.take_woken() == {APP}
    assert agg.take_woken() == frozenset()
    # Another replica holding too is no second wake; a snapshot after a resync can be one.
    agg.apply(B, CountLine("snapshot", 1, {APP: c(1, 1, held=1)}), 0.2)
    assert agg.take_woken() == frozenset()
    agg.apply(A, CountLine("change", 3, {APP: c(0, 1)}), 0.3)
    agg.apply(B, CountLine("snapshot", 5, {APP: c(0, 1)}), 0.4)
    agg.apply(B, CountLine("snapshot", 6, {APP: c(1, 2, held=1)}), 0.5)
    assert agg.take_woken() == {APP}


async def test_live_activity_and_its_end_come_from_one_clock_reading() -> None:
    """The stream asks whether a target is active and until when in one reading: with two, the
    window could run out between them (active, yet no end to wait for: a stream stuck on true
    until its next resend)."""
    now = [0.0]
    reads: list[float] = []

    def clock() -> float:
        reads.append(now[0])
        now[0] += 0.6 if now[0] >= 0.9 else 0.0  # time moves on after every reading from 0.9
        return reads[-1]

    live = LiveCounts(Aggregator(15.0), clock=clock)
    live.apply(A, CountLine("snapshot", 1, {APP: c()}))
    now[0] = 0.2
    live.apply(A, CountLine("change", 2, {APP: c(0, 3)}))  # short requests at 0.2
    now[0] = 0.9
    active, until, at = live.active_and_until(CONC)
    assert active
    assert at == 0.9
    assert until == pytest.approx(1.2)
    live.close()


def test_counts_sums_each_busy_target_over_replicas_and_filters_by_namespace() -> None:
    agg = run(
        [
            snap(0.0, A, app=c(in_flight=2, held=1), api=c(in_flight=1)),
            snap(0.0, B, app=c(in_flight=3, held=3), idle=c(requests=9)),
        ]
    )
    agg.apply("10.0.0.3:9090", CountLine("snapshot", 1, {"other/web": c(held=1)}), 0.0)
    assert agg.counts() == {APP: (5, 4), API: (1, 0), "other/web": (0, 1)}
    assert agg.counts("ns") == {API: (1, 0), APP: (5, 4)}
    assert agg.counts("n") == {}  # a namespace, not a prefix of one
    agg.drop(B)
    assert agg.counts("ns") == {API: (1, 0), APP: (2, 1)}


def test_held_and_last_activity_of_an_unknown_target_are_none() -> None:
    agg = Aggregator(15.0)
    assert agg.held(APP) == 0
    assert agg.last_activity(APP) is None
    assert agg.drop(A) == frozenset()  # a replica never seen


def test_a_snapshot_says_which_targets_it_changed() -> None:
    agg = Aggregator(15.0)
    applied = agg.apply(A, CountLine("snapshot", 1, {APP: c(2), API: c()}), 0.0)
    assert applied == Applied(frozenset({APP, ALL_TARGETS}))
    assert agg.last_activity(APP) is None  # a first snapshot is a baseline, not activity
    agg.apply(A, CountLine("change", 2, {APP: c(1)}), 3.0)
    assert agg.last_activity(APP) == 3.0  # a request ended


def test_request_rate_value_is_the_rate() -> None:
    agg = Aggregator(15.0)
    agg.watch(RATE, 0.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c()}), 0.0)
    agg.apply(A, CountLine("change", 2, {APP: c(requests=30)}), 1.0)
    assert agg.value(RATE, 2.0) == pytest.approx(3.0)  # 30 over a 10 s window
    assert agg.value(RATE, 2.0) == agg.rate(RATE, 2.0)


def test_active_until_is_none_while_a_request_is_in_flight() -> None:
    agg = Aggregator(15.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c()}), 0.0)
    agg.apply(A, CountLine("change", 2, {APP: c(1, 1)}), 1.0)  # one request, just begun
    assert agg.active_until(CONC, 1.5) is None
    agg.apply(A, CountLine("change", 3, {APP: c(0, 1)}), 2.0)
    assert agg.active_until(CONC, 2.5) == 2.0 + CONC.activity_window


def test_every_stale_replica_is_dropped_and_each_change_reported() -> None:
    agg = Aggregator(5.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c(1)}), 0.0)
    agg.apply(B, CountLine("snapshot", 1, {API: c(2)}), 0.0)
    assert agg.expire(6.0) == {APP, API, ALL_TARGETS}
    assert agg.counts() == {}


def test_windows_and_activity_are_forgotten_only_after_window_idle() -> None:
    long = MetricTarget(APP, "requestRate", 1, window=1000.0, granularity=1.0)
    agg = Aggregator(5000.0)  # the default window_idle: 600 s
    agg.watch(long, 0.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c()}), 0.0)
    agg.apply(A, CountLine("change", 2, {APP: c(requests=10)}), 1.0)
    agg.expire(600.0)  # exactly window_idle since the window was last used: kept
    assert agg.rate(long, 600.0) == pytest.approx(0.01)
    assert agg.last_activity(APP) == 1.0
    agg.expire(600.5)  # 599.5 s since the last activity: kept
    assert agg.last_activity(APP) == 1.0
    agg.expire(601.0)  # exactly window_idle: kept
    assert agg.last_activity(APP) == 1.0
    agg.expire(601.5)
    assert agg.last_activity(APP) is None
    agg.expire(1200.5)  # the window, last used at 600, is forgotten: its requests with it
    agg.apply(A, CountLine("change", 3, {APP: c(requests=10)}), 1200.6)
    assert agg.rate(long, 1200.6) == 0.0


def test_a_target_back_on_a_replica_spreads_its_busy_time_from_its_return() -> None:
    """A target gone from a replica's snapshot and back in a later change: its busy seconds
    count from that change, not from when it was last reported before it went."""
    agg = Aggregator(100.0)
    conc = MetricTarget(APP, "concurrency", 1, window=10.0, granularity=1.0)
    agg.watch(conc, 0.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c()}), 0.0)
    agg.apply(A, CountLine("snapshot", 2, {}), 10.0)  # the replica restarted
    agg.apply(A, CountLine("change", 3, {APP: c(busy=5.0)}), 20.0)
    assert agg.rate(conc, 20.0) == pytest.approx(0.5)  # 5 request-seconds, all at 20


def test_the_interceptor_wide_average_sums_every_targets_busy_time() -> None:
    everything = MetricTarget(ALL_TARGETS, "concurrency", 1, window=10.0, granularity=1.0)
    agg = Aggregator(100.0)
    agg.watch(everything, 0.0)
    agg.apply(A, CountLine("snapshot", 1, {APP: c(), API: c()}), 0.0)
    agg.apply(A, CountLine("change", 2, {APP: c(busy=4.0), API: c(busy=6.0)}), 5.0)
    assert agg.value(everything, 5.0) == pytest.approx(1.0)  # 10 request-seconds over 10 s
