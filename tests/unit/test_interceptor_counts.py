"""Per-target counters and the count-stream wire format."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wakeway.interceptor.counts import Counters, CountUpdate, TargetCounts, heartbeat_line

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_arrive_hold_unhold_finish() -> None:
    clock = Clock()
    c = Counters(clock)
    c.arrive("ns/a")
    assert c.hold("ns/a") is True
    c.arrive("ns/a")
    assert c.hold("ns/a") is False
    assert c.get("ns/a") == TargetCounts(in_flight=2, held=2, requests=2)
    c.unhold("ns/a")
    c.unhold("ns/a")
    c.finish("ns/a")
    assert c.get("ns/a") == TargetCounts(1, 0, 2)
    c.finish("ns/a")
    assert c.snapshot() == {"ns/a": TargetCounts(0, 0, 2, idle_since=100.0)}
    assert c.get("ns/unknown") == TargetCounts(0, 0, 0)


def test_take_changes_reports_changed_targets_once_and_wakes() -> None:
    c = Counters(Clock())
    c.arrive("ns/a")
    c.arrive("ns/b")
    c.hold("ns/b")
    changes, wake = c.take_changes()
    assert changes == {"ns/a": TargetCounts(1, 0, 1), "ns/b": TargetCounts(1, 1, 1)}
    assert wake
    assert c.take_changes() == ({}, False)
    c.finish("ns/a")
    assert c.take_changes() == ({"ns/a": TargetCounts(0, 0, 1, idle_since=100.0)}, False)


def test_busy_integrates_in_flight_over_time_so_short_requests_are_not_lost() -> None:
    clock = Clock()
    c = Counters(clock)
    # Fifty 1 ms requests, one after another, never seen in flight by any reader...
    for _ in range(50):
        c.arrive("ns/a")
        clock.now += 0.001
        c.finish("ns/a")
        clock.now += 0.019
    got = c.get("ns/a")
    assert got.in_flight == 0
    assert got.requests == 50
    # ...still add up to 50 ms of in-flight time.
    assert got.busy == pytest.approx(0.050)
    assert got.idle_since == pytest.approx(clock.now - 0.019)


def test_busy_counts_open_requests_up_to_the_reading_and_overlaps_add_up() -> None:
    clock = Clock()
    c = Counters(clock)
    c.arrive("ns/a")
    clock.now += 1.0
    c.arrive("ns/a")  # two in flight from here
    clock.now += 0.5
    assert c.get("ns/a").busy == pytest.approx(1.0 + 2 * 0.5)
    assert c.get("ns/a").idle_since is None
    c.finish("ns/a")
    clock.now += 0.25
    assert c.snapshot()["ns/a"].busy == pytest.approx(2.0 + 0.25)
    c.finish("ns/a")
    clock.now += 10
    assert c.get("ns/a").busy == pytest.approx(2.25)  # nothing in flight: no longer grows
    assert c.get("ns/a").idle_since == pytest.approx(101.75)


@given(st.lists(st.sampled_from(["start", "start-held", "end"]), max_size=100))
def test_counts_never_go_negative_and_requests_only_grow(steps: list[str]) -> None:
    clock = Clock()
    c = Counters(clock)
    last_busy = 0.0
    open_held = 0
    open_plain = 0
    last_requests = 0
    for step in steps:
        if step == "start":
            c.arrive("t")
            open_plain += 1
        elif step == "start-held":
            c.arrive("t")
            c.hold("t")
            open_held += 1
        elif open_held:
            c.unhold("t")
            c.finish("t")
            open_held -= 1
        elif open_plain:
            c.finish("t")
            open_plain -= 1
        clock.now += 0.5
        got = c.get("t")
        assert got.in_flight == open_held + open_plain
        assert got.held == open_held
        assert got.requests >= last_requests
        assert got.busy >= last_busy
        assert (got.idle_since is None) == (got.in_flight > 0 or got.requests == 0)
        last_requests = got.requests
        last_busy = got.busy


def test_wire_format() -> None:
    update = CountUpdate("change", 7, {"ns/a": TargetCounts(3, 1, 10)}, wake=True)
    doc = json.loads(update.to_json_line(12.5))
    assert doc == {
        "type": "change",
        "seq": 7,
        "time": 12.5,
        "wake": True,
        "targets": {"ns/a": {"inFlight": 3, "held": 1, "requests": 10, "busy": 0.0}},
    }
    assert update.to_json_line(0).endswith(b"\n")
    assert json.loads(heartbeat_line(7, 1.0)) == {"type": "heartbeat", "seq": 7, "time": 1.0}
