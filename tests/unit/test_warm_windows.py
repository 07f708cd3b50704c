"""Cron expressions in a time zone and warm windows, on a virtual clock (epoch seconds given to
the pure functions), across both daylight-saving changes of Europe/Berlin in 2026:
29 March 02:00 CET -> 03:00 CEST (the hour 02:xx does not exist), and
25 October 03:00 CEST -> 02:00 CET (the hour 02:xx happens twice)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from wakeway.model import ModelError
from wakeway.model.cron import next_fire, parse_cron, shifted, shortest_gap
from wakeway.model.httpso import parse_httpscaledobject
from wakeway.model.warm import Occurrence, Warmth, WarmWindow, warmth

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> float:
    """Epoch seconds of a UTC time written ``2026-03-29 01:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def berlin(text: str, fold: int = 0) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN, fold=fold).timestamp()


def fires(expr: str, after: float, count: int, tz: ZoneInfo = BERLIN) -> list[str]:
    """The next ``count`` firings, as UTC text."""
    cron = parse_cron(expr, "s")
    out: list[str] = []
    at = after
    for _ in range(count):
        found = next_fire(cron, tz, at)
        assert found is not None
        out.append(datetime.fromtimestamp(found, UTC).strftime("%Y-%m-%d %H:%M"))
        at = found
    return out


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "minutes", "hours", "days", "months", "weekdays"),
    [
        ("* * * * *", range(60), range(24), range(1, 32), range(1, 13), range(7)),
        ("0 9 * * 1-5", [0], [9], range(1, 32), range(1, 13), [1, 2, 3, 4, 5]),
        (
            "*/15 8-18/2 1,15 * *",
            [0, 15, 30, 45],
            [8, 10, 12, 14, 16, 18],
            [1, 15],
            range(1, 13),
            range(7),
        ),
        ("5/20 0 * JAN,mar-May SUN,7", [5, 25, 45], [0], range(1, 32), [1, 3, 4, 5], [0]),
        ("0 0 1-31/10 * *", [0], [0], [1, 11, 21, 31], range(1, 13), range(7)),
        ("0 12 * * FRI-SAT", [0], [12], range(1, 32), range(1, 13), [5, 6]),
    ],
)
def test_fields_ranges_steps_lists_and_names(
    expr: str,
    minutes: Iterable[int],
    hours: Iterable[int],
    days: Iterable[int],
    months: Iterable[int],
    weekdays: Iterable[int],
) -> None:
    cron = parse_cron(expr, "s")
    assert cron.minutes == frozenset(minutes)
    assert cron.hours == frozenset(hours)
    assert cron.days == frozenset(days)
    assert cron.months == frozenset(months)
    assert cron.weekdays == frozenset(weekdays)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("0 9 * *", "must have 5 fields"),
        ("0 9 * * * *", "must have 5 fields"),
        ("60 9 * * *", "minute field '60': 60 is outside 0-59"),
        ("0 24 * * *", "hour field '24': 24 is outside 0-23"),
        ("0 9 0 * *", "day of month field '0'"),
        ("0 9 * 13 *", "month field '13'"),
        ("0 9 * * 8", "day of week field '8'"),
        ("0 9 * * MON-FOO", "'FOO' is not a number or name"),
        ("0 9 * * 5-1", "runs backwards"),
        ("*/0 9 * * *", "step must be at least 1"),
        ("0 9 * * @", "is not a cron term"),
        ("0 9 30 2 *", "names no day that exists"),
        ("0 9 31 4,6,9,11 *", "names no day that exists"),
    ],
)
def test_bad_expressions_say_which_field(expr: str, says: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_cron(expr, "spec.warmWindows[0].schedule")
    assert caught.value.path == "spec.warmWindows[0].schedule"
    assert says in caught.value.message


# --- evaluation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # Weekdays at 09:00 Berlin (CET, UTC+1 in January): Friday 9th, then Monday 12th.
        ("0 9 * * 1-5", utc("2026-01-09 07:00"), ["2026-01-09 08:00", "2026-01-12 08:00"]),
        # Strictly after: a firing at the very instant given is not the next one.
        ("0 9 * * 1-5", utc("2026-01-09 08:00"), ["2026-01-12 08:00", "2026-01-13 08:00"]),
        # Both day fields restricted: the 1st of the month OR a Monday (Vixie cron, KEDA).
        ("0 9 1 * MON", utc("2026-05-29 12:00"), ["2026-06-01 07:00", "2026-06-08 07:00"]),
        # A day field starting with "*" counts as unrestricted: the 1st-and-every-other AND Monday.
        ("0 9 */2 * MON", utc("2026-06-01 12:00"), ["2026-06-15 07:00", "2026-06-29 07:00"]),
        # Lists and steps within a day.
        ("0,30 9-10 * * *", utc("2026-01-01 07:45"), ["2026-01-01 08:00", "2026-01-01 08:30"]),
        # Month names and the leap day: 29 February comes in 2028.
        ("0 0 29 FEB *", utc("2026-01-01 00:00"), ["2028-02-28 23:00", "2032-02-28 23:00"]),
    ],
)
def test_next_fire(expr: str, after: float, expected: list[str]) -> None:
    assert fires(expr, after, len(expected)) == expected


def test_spring_forward_a_skipped_local_time_fires_at_the_change() -> None:
    # 02:30 does not exist on 29 March 2026 in Berlin: it fires at 03:00 CEST (01:00 UTC),
    # the instant of the change; the day before and after at 02:30 local as usual.
    assert fires("30 2 * * *", berlin("2026-03-28 00:00"), 3) == [
        "2026-03-28 01:30",  # 02:30 CET
        "2026-03-29 01:00",  # the change: 03:00 CEST
        "2026-03-30 00:30",  # 02:30 CEST
    ]
    # Every time in the gap fires once, at the change; the hour after it is untouched.
    assert fires("0,15,45 2,3 29 3 *", berlin("2026-03-29 00:00"), 4) == [
        "2026-03-29 01:00",
        "2026-03-29 01:15",  # 03:15 CEST
        "2026-03-29 01:45",  # 03:45 CEST
        "2027-03-29 00:00",  # 02:00 CEST a year later
    ]


def test_fall_back_a_repeated_local_time_fires_once_at_its_first_occurrence() -> None:
    # 02:30 happens twice on 25 October 2026 (CEST, then CET): it fires once, the first time.
    assert fires("30 2 * * *", berlin("2026-10-24 12:00"), 2) == [
        "2026-10-25 00:30",  # 02:30 CEST
        "2026-10-26 01:30",  # 02:30 CET, 25 hours later
    ]
    # Hourly: the repeated hour's second pass does not fire again.
    assert fires("0 * 25 10 *", berlin("2026-10-25 01:30"), 3) == [
        "2026-10-25 00:00",  # 02:00 CEST
        "2026-10-25 02:00",  # 03:00 CET (02:00 CET, the repeat, is skipped)
        "2026-10-25 03:00",
    ]


def test_the_same_schedule_in_another_zone() -> None:
    new_york = ZoneInfo("America/New_York")  # changes on 8 March, three weeks before Berlin
    assert fires("0 9 * * *", utc("2026-03-07 00:00"), 2, new_york) == [
        "2026-03-07 14:00",  # EST
        "2026-03-08 13:00",  # EDT
    ]


# --- windows -------------------------------------------------------------------------------------


def window(expr: str, duration: float, *, lead: float = 0.0, replicas: int = 1) -> WarmWindow:
    return WarmWindow(parse_cron(expr, "s"), duration, "Europe/Berlin", replicas, lead, BERLIN)


OFFICE = window("0 9 * * 1-5", 8 * 3600, lead=600, replicas=2)  # 09:00-17:00, woken 08:50
NIGHT = window("0 22 * * *", 4 * 3600)  # 22:00-02:00


def occ(index: int, wake: str, start: str, end: str, replicas: int) -> Occurrence:
    return Occurrence(index, berlin(wake), berlin(start), berlin(end), replicas)


MON = "2026-01-12"
TUE = "2026-01-13"


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Monday 08:00: nothing in force; the office window wakes it at 08:50.
        (
            f"{MON} 08:00",
            Warmth(
                0,
                berlin(f"{MON} 08:50"),
                occ(0, f"{MON} 08:50", f"{MON} 09:00", f"{MON} 17:00", 2),
            ),
        ),
        # The lead time is part of the window: at 08:50 it is in force, before it opens.
        (
            f"{MON} 08:50",
            Warmth(
                2, berlin(f"{MON} 17:00"), occ(0, f"{MON} 08:50", f"{MON} 09:00", f"{MON} 17:00", 2)
            ),
        ),
        (
            f"{MON} 16:59",
            Warmth(
                2, berlin(f"{MON} 17:00"), occ(0, f"{MON} 08:50", f"{MON} 09:00", f"{MON} 17:00", 2)
            ),
        ),
        # 17:00: closed (the end is exclusive); next the night window at 22:00.
        (
            f"{MON} 17:00",
            Warmth(
                0, berlin(f"{MON} 22:00"), occ(1, f"{MON} 22:00", f"{MON} 22:00", f"{TUE} 02:00", 1)
            ),
        ),
        # Past midnight the night window is still in force, and the office one is next.
        (
            f"{TUE} 01:00",
            Warmth(
                1, berlin(f"{TUE} 02:00"), occ(1, f"{MON} 22:00", f"{MON} 22:00", f"{TUE} 02:00", 1)
            ),
        ),
        # Saturday: no office window until Monday; the night one still runs daily.
        (
            "2026-01-17 12:00",
            Warmth(
                0,
                berlin("2026-01-17 22:00"),
                occ(1, "2026-01-17 22:00", "2026-01-17 22:00", "2026-01-18 02:00", 1),
            ),
        ),
    ],
)
def test_warmth_floor_next_change_and_current(now: str, expected: Warmth) -> None:
    assert warmth([OFFICE, NIGHT], berlin(now)) == expected


def test_overlapping_windows_take_the_larger_floor() -> None:
    big = window("0 12 * * *", 3600, replicas=5)
    got = warmth([OFFICE, big], berlin(f"{MON} 12:30"))
    assert got.floor == 5
    assert got.next_change == berlin(f"{MON} 13:00")  # where the floor drops back to 2


def test_a_window_across_the_autumn_change_lasts_its_duration_in_elapsed_time() -> None:
    late = window("0 1 * * *", 3 * 3600)  # 01:00 for 3 hours; 25 October has 25 of them
    got = warmth([late], berlin("2026-10-25 01:30"))
    assert got.floor == 1
    assert got.current is not None
    assert got.current.end - got.current.start == 3 * 3600
    assert got.current.end == berlin("2026-10-25 03:00")  # 03:00 CET: wall clock shows 2h


def test_a_window_opening_in_the_spring_gap_opens_at_the_change() -> None:
    gap = window("30 2 * * *", 1800)
    before = warmth([gap], berlin("2026-03-29 01:59"))
    assert before.floor == 0
    assert before.next_change == utc("2026-03-29 01:00")
    assert warmth([gap], utc("2026-03-29 01:00")).floor == 1
    assert warmth([gap], utc("2026-03-29 01:29")).floor == 1
    assert warmth([gap], utc("2026-03-29 01:30")).floor == 0


# --- KEDA's start/end pair ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "minutes", "expected"),
    [
        ("0 9 * * 1-5", 0, "0 9 * * 1-5"),
        ("0 9 * * 1-5", 8 * 60, "0 17 * * 1-5"),
        ("0 9 * * MON-FRI", -10, "50 8 * * MON-FRI"),
        ("30 8,12 * * *", 45, "15 9,13 * * *"),
        # Crossing midnight for every time moves the day fields too.
        ("0 22 * * 1-5", 4 * 60, "0 2 * * 2-6"),
        ("0 22 * * 5,6", 4 * 60, "0 2 * * 0,6"),
        ("0 22 10 * *", 4 * 60, "0 2 11 * *"),
        ("5 0 * * 1", -10, "55 23 * * 0"),
        # Not one expression: some times cross midnight and others not; minutes that no longer
        # form a grid; a day of the month that may not exist; a restricted month and weekday.
        ("0 9,22 * * *", 4 * 60, None),
        ("0,50 9 * * *", 15, None),
        ("0 22 28 * *", 4 * 60, None),
        ("0 22 * 6 1", 4 * 60, None),
        ("0 0 1 * *", -10, None),
    ],
)
def test_shifted(expr: str, minutes: int, expected: str | None) -> None:
    assert shifted(parse_cron(expr, "s"), minutes) == expected


@pytest.mark.parametrize(
    ("expr", "gap"),
    [
        ("0 9 * * *", 1440),
        ("0 9,17 * * *", 480),
        ("0 9 * * 1-5", 1440),
        ("0 9 * * 1", 7 * 1440),
        ("0 22 * * 1,2", 1440),
        ("*/5 * * * *", 5),
    ],
)
def test_shortest_gap(expr: str, gap: int) -> None:
    assert shortest_gap(parse_cron(expr, "s")) == gap


# --- the spec field ------------------------------------------------------------------------------


def doc(*windows: dict[str, object], max_replicas: int = 10) -> dict[str, object]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "app"},
        "spec": {
            "scaleTargetRef": {"service": "app", "port": 80},
            "replicas": {"max": max_replicas},
            "warmWindows": list(windows),
        },
    }


def test_defaults() -> None:
    (parsed,) = parse_httpscaledobject(
        doc({"schedule": "0 9 * * *", "duration": "1h"})
    ).warm_windows
    assert (parsed.time_zone, parsed.min_replicas, parsed.lead_time) == ("UTC", 1, 0.0)
    assert parsed.duration == 3600.0


@pytest.mark.parametrize(
    ("window", "path", "says"),
    [
        ({"schedule": "0 25 * * *", "duration": "1h"}, "spec.warmWindows[0].schedule", "hour"),
        ({"duration": "1h"}, "spec.warmWindows[0].schedule", "is required"),
        (
            {"schedule": "0 9 * * *", "timeZone": "Europe/Atlantis", "duration": "1h"},
            "spec.warmWindows[0].timeZone",
            "not a known IANA time zone",
        ),
        ({"schedule": "0 9 * * *"}, "spec.warmWindows[0].duration", "is required"),
        ({"schedule": "0 9 * * *", "duration": "0s"}, "spec.warmWindows[0].duration", "zero"),
        (
            {"schedule": "0 9 * * *", "duration": "1h", "minReplicas": 11},
            "spec.warmWindows[0].minReplicas",
            "spec.replicas.max (10)",
        ),
        (
            {"schedule": "0 9 * * *", "duration": "1h", "leadTime": "soon"},
            "spec.warmWindows[0].leadTime",
            "not a duration",
        ),
    ],
)
def test_bad_windows_name_the_field(window: dict[str, object], path: str, says: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_httpscaledobject(doc(window))
    assert f"{path}: " in str(caught.value)
    assert says in str(caught.value)
