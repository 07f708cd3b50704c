"""Five-field cron expressions evaluated in a named time zone (pure: no clock, no I/O).

``minute hour day-of-month month day-of-week``, each field ``*``, a number, a range ``a-b``, a
step ``*/n`` or ``a-b/n`` or ``a/n``, or a comma list of those; months and weekdays also by
their English three-letter names (``JAN``, ``MON``), Sunday as 0 or 7. As in Vixie cron (and
KEDA's cron library), when both day fields are restricted a day matches if EITHER matches; a
day field that starts with ``*`` (``*`` or ``*/2``) counts as unrestricted, and then both must
match.

Local times the zone skips (the spring-forward gap) happen at the instant of the change; local
times it repeats (the autumn hour) happen once, at their first occurrence.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wakeway.model.errors import ModelError

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# Every combination of day-of-month, month and weekday recurs within this many days (a 29th of
# February comes at least every 8 years), so a schedule with no day in it never fires.
HORIZON_DAYS = 9 * 366
DAY = 1440  # minutes

_TERM = re.compile(r"^(\*|[0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?(?:/([0-9]+))?$")
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")


@dataclass(frozen=True, slots=True)
class Spec:
    """One field's bounds and names."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_FIELDS = (
    Spec("minute", 0, 59),
    Spec("hour", 0, 23),
    Spec("day of month", 1, 31),
    Spec("month", 1, 12, MONTHS, 1),
    Spec("day of week", 0, 7, WEEKDAYS, 0),
)


@dataclass(frozen=True, slots=True)
class Cron:
    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_star: bool  # the day-of-month field starts with "*"
    weekdays_star: bool

    @property
    def fields(self) -> list[str]:
        return self.text.split()

    def times(self) -> list[int]:
        """The minutes of the day it fires at, sorted."""
        return sorted(h * 60 + m for h in self.hours for m in self.minutes)

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow


def parse_cron(text: str, path: str) -> Cron:
    """A :class:`Cron`, or a :class:`ModelError` at ``path`` saying which field is wrong."""
    parts = text.split()
    if len(parts) != 5:
        raise ModelError(
            path,
            f"{text!r} must have 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(parts)}",
        )
    sets = [_field(part, spec, path) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    cron = Cron(
        " ".join(parts),
        sets[0],
        sets[1],
        sets[2],
        sets[3],
        weekdays,
        parts[2].startswith("*"),
        parts[4].startswith("*"),
    )
    if _first_day(cron, date(2001, 1, 1), HORIZON_DAYS) is None:
        raise ModelError(path, f"{text!r} names no day that exists (such as 30 February)")
    return cron


def _field(text: str, spec: Spec, path: str) -> frozenset[int]:
    out: set[int] = set()
    for term in text.split(","):
        match = _TERM.match(term)
        if match is None:
            raise ModelError(path, f"{spec.name} field {text!r}: {term!r} is not a cron term")
        first, last, step = match.groups()
        if first == "*":
            if last is not None:
                raise ModelError(path, f"{spec.name} field {text!r}: '*' takes no range")
            low, high = spec.low, spec.high
        else:
            low = _value(first, spec, text, path)
            high = _value(last, spec, text, path) if last is not None else low
            if last is None and step is not None:
                high = spec.high  # "5/15": from 5 to the end, every 15
        if low > high:
            raise ModelError(path, f"{spec.name} field {text!r}: range {term!r} runs backwards")
        every = int(step) if step is not None else 1
        if every < 1:
            raise ModelError(path, f"{spec.name} field {text!r}: step must be at least 1")
        out.update(range(low, high + 1, every))
    return frozenset(out)


def _value(token: str, spec: Spec, text: str, path: str) -> int:
    upper = token.upper()
    if upper in spec.names:
        return spec.names.index(upper) + spec.name_base
    if not token.isdigit():
        raise ModelError(path, f"{spec.name} field {text!r}: {token!r} is not a number or name")
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise ModelError(
            path,
            f"{spec.name} field {text!r}: {value} is outside {spec.low}-{spec.high}",
        )
    return value


def zone(name: str, path: str) -> ZoneInfo:
    """The IANA time zone ``name``, or a :class:`ModelError` at ``path``."""
    if not _ZONE_NAME.match(name):
        raise ModelError(path, f"{name!r} is not an IANA time zone name such as Europe/Berlin")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ModelError(
            path, f"{name!r} is not a known IANA time zone (such as Europe/Berlin or UTC)"
        ) from None


# --- evaluation -------------------------------------------------------------------------------


def next_fire(cron: Cron, tz: ZoneInfo, after: float) -> float | None:
    """The first instant (epoch seconds) strictly after ``after`` at which ``cron`` fires in
    ``tz``; None if there is none within the horizon (never, for a parsed expression)."""
    local = datetime.fromtimestamp(after, tz).date()
    # From the day before: a skipped local time late on one day may land on the next.
    day: date | None = local - timedelta(days=1)
    times = cron.times()
    while day is not None and (day - local).days <= HORIZON_DAYS:
        day = _first_day(cron, day, HORIZON_DAYS)
        if day is None:
            return None
        for minute in times:
            wall = datetime(day.year, day.month, day.day, minute // 60, minute % 60)
            instant = instant_of(wall, tz)
            if instant > after:
                return instant
        day += timedelta(days=1)
    return None


def instant_of(wall: datetime, tz: ZoneInfo) -> float:
    """Epoch seconds of the naive local time ``wall`` in ``tz``: its first occurrence when the
    zone repeats it, the instant of the change when the zone skips it."""
    first = wall.replace(tzinfo=tz, fold=0).timestamp()
    if datetime.fromtimestamp(first, tz).replace(tzinfo=None) == wall:
        return first
    # Skipped: with fold=0 the offset before the change applies (an instant after it), with
    # fold=1 the one after it (an instant before it); the change lies between.
    low = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    high = int(first)
    offset = datetime.fromtimestamp(high, tz).utcoffset()
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == offset:
            high = mid
        else:
            low = mid
    return float(high)


def _first_day(cron: Cron, start: date, limit: int) -> date | None:
    day = start
    for _ in range(limit + 1):
        if cron.matches_day(day):
            return day
        day += timedelta(days=1)
    return None


# --- shifting, for KEDA's start/end pair -------------------------------------------------------


def shifted(cron: Cron, minutes: int) -> str | None:
    """A cron expression that fires exactly ``minutes`` (local wall-clock minutes, may be
    negative) after each time ``cron`` fires, or None when no single expression does."""
    if minutes == 0:
        return cron.text
    moved = [t + minutes for t in cron.times()]
    day_shifts = {t // DAY for t in moved}
    if len(day_shifts) != 1:
        return None  # some times cross midnight, others not
    (k,) = day_shifts
    of_day = {t % DAY for t in moved}
    hours = {t // 60 for t in of_day}
    mins = {t % 60 for t in of_day}
    if len(hours) * len(mins) != len(of_day):
        return None  # not a product of a minute set and an hour set any more
    minute_f, hour_f, dom_f, month_f, dow_f = cron.fields
    if minutes % DAY:
        minute_f, hour_f = _render(mins, 0, 59), _render(hours, 0, 23)
    if k:
        days = _shift_days(cron, k)
        if days is None:
            return None
        dom_f, dow_f = days
    return f"{minute_f} {hour_f} {dom_f} {month_f} {dow_f}"


def _shift_days(cron: Cron, k: int) -> tuple[str, str] | None:
    """The day-of-month and day-of-week fields moved ``k`` days, when that is exact."""
    full_days = cron.days == frozenset(range(1, 32))
    full_weekdays = cron.weekdays == frozenset(range(7))
    full_months = cron.months == frozenset(range(1, 13))
    if cron.days_star:
        if not full_days:
            return None
        dom = "*"
    else:
        moved = {d + k for d in cron.days}
        if not all(1 <= d <= 28 for d in moved):
            return None  # would cross a month's end
        dom = _render(moved, 1, 31)
    if cron.weekdays_star:
        if not full_weekdays:
            return None
        dow = "*"
    else:
        dow = _render({(w + k) % 7 for w in cron.weekdays}, 0, 6)
    # Restricted months stay exact only when the day cannot leave its month: by day of month
    # alone, kept inside 1-28 above.
    if not full_months and (cron.days_star or not cron.weekdays_star):
        return None
    return dom, dow


def _render(values: set[int], low: int, high: int) -> str:
    """``values`` as a cron field: ``*``, or runs such as ``1-5,7``."""
    if values == set(range(low, high + 1)):
        return "*"
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@lru_cache(maxsize=256)
def shortest_gap(cron: Cron) -> int:
    """The fewest wall-clock minutes between two consecutive times ``cron`` fires."""
    times = cron.times()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    day = _first_day(cron, date(2001, 1, 1), HORIZON_DAYS)
    fewest_days: int | None = None
    end = date(2001, 1, 1) + timedelta(days=HORIZON_DAYS)
    while day is not None and day < end:
        after = _first_day(cron, day + timedelta(days=1), HORIZON_DAYS)
        if after is None:
            break
        span = (after - day).days
        fewest_days = span if fewest_days is None else min(fewest_days, span)
        if fewest_days == 1:
            break
        day = after
    if fewest_days is not None:
        gaps.append(fewest_days * DAY - times[-1] + times[0])
    return min(gaps)
