"""What every benchmark shares: one percentile definition, ratios, free ports, one router, and
wakeway's structured events.

**Percentiles are nearest-rank**: the p-th percentile of n samples is the smallest sample with
at least p % of the samples at or below it, the ``ceil(p/100 * n)``-th smallest. It is always a
measured value (never interpolated between two), so with 20 samples p99 is the maximum and p50
the 10th smallest. Every p50/p90/p99 a benchmark prints or the docs quote uses this function.

**Ratios** are wakeway's figure over a baseline measured in the same run, printed with two
decimals; a ratio without a baseline (none measured, or zero) is ``-``.

**Events**: with ``--log-format json`` each wakeway log line is one JSON object; a structured
event (``wakeway.model.logs.event``) adds ``event`` (its name), ``mono`` (``time.monotonic()``,
one clock for every process of the machine) and its fields. Benchmarks read wake and sleep
timings from these, never from the human message.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wakeway.gateway.request import Request
from wakeway.model.httpso import HTTPScaledObject

# --- statistics ---


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (``q`` in 0..1, so 0.99 is p99) of non-empty ``values``."""
    if not values:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be within 0..1, got {q}")
    ordered = sorted(values)
    # round() first: 0.07 * 100 is 7.000000000000001 in floating point, whose ceiling is 8.
    rank = math.ceil(round(q * len(ordered), 9))
    return ordered[max(rank, 1) - 1]


def dist(values: Sequence[float]) -> dict[str, float]:
    """Count, p50, p90, p99 and maximum; the figures are NaN when there are no samples."""
    if not values:
        nan = float("nan")
        return {"n": 0, "p50": nan, "p90": nan, "p99": nan, "max": nan}
    return {
        "n": len(values),
        "p50": percentile(values, 0.50),
        "p90": percentile(values, 0.90),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; NaN when the baseline is not a positive number."""
    return value / baseline if baseline > 0 else float("nan")


def format_ratio(value: float | None, baseline: float | None) -> str:
    """A ratio as printed in every report: two decimals, ``-`` when there is none."""
    if value is None or baseline is None:
        return "-"
    r = ratio(value, baseline)
    return "-" if math.isnan(r) or math.isnan(value) else f"{r:.2f}"


# --- ports and the router ---


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports the OS picked as free on ``host``, for programs that cannot listen
    on port 0 and report the port they got (nginx, the KEDA add-on). Prefer port 0."""
    with contextlib.ExitStack() as held:  # all bound at once, so no two are the same
        socks = [held.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]


def free_port(host: str = "127.0.0.1") -> int:
    """One port as :func:`free_ports` picks them."""
    return free_ports(1, host)[0]


class OneTarget:
    """A router sending every request to one HTTPScaledObject (the benchmarks' interceptors)."""

    def __init__(self, target: HTTPScaledObject) -> None:
        self.target = target

    def lookup(self, req: Request) -> HTTPScaledObject | None:
        return self.target


# --- structured events ---


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a wakeway process's JSON log."""

    level: str
    message: str
    event: str | None  # the structured event's name, if the line is one
    mono: float | None  # time.monotonic() in the emitting process when the record was made
    doc: dict[str, Any]  # the whole object: an event's fields are top-level keys

    @property
    def problem(self) -> bool:
        return self.level in ("WARNING", "ERROR", "CRITICAL") or "exception" in self.doc


def parse_log_line(line: str) -> LogLine | None:
    """The JSON log line ``line``, or None when it is not one (a raw traceback, say)."""
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    name = doc.get("event")
    mono = doc.get("mono")
    return LogLine(
        level=str(doc.get("level", "")),
        message=str(doc.get("message", "")),
        event=name if isinstance(name, str) else None,
        mono=float(mono) if isinstance(mono, int | float) else None,
        doc=doc,
    )


@dataclass(frozen=True, slots=True)
class Wake:
    """Local mode's ``wake`` event: a workload became ready."""

    at: float  # when it was ready, on the reader's wall clock (time.time())
    workload: str
    pid: int
    port: int
    ready_in: float  # the workload's own spawn -> readiness passed (s)
    waited: float  # first held request noticed -> endpoint published (s)


@dataclass(frozen=True, slots=True)
class Sleep:
    """Local mode's ``sleep`` event: a workload was stopped."""

    at: float  # when it had stopped, on the reader's wall clock (time.time())
    workload: str
    reason: str
    idle_for: float
    stopped_in: float
    how: str


def _wall_time(line: LogLine, name: str, wall_minus_mono: float) -> float:
    if line.event != name or line.mono is None:
        raise ValueError(f"not a {name} event: {line.doc}")
    return line.mono + wall_minus_mono


def wake_of(line: LogLine, wall_minus_mono: float) -> Wake:
    """A ``wake`` event; ``wall_minus_mono`` is ``time.time() - time.monotonic()`` here."""
    d = line.doc
    at = _wall_time(line, "wake", wall_minus_mono)
    return Wake(at, d["workload"], d["pid"], d["port"], d["ready_s"], d["waited_s"])


def sleep_of(line: LogLine, wall_minus_mono: float) -> Sleep:
    """A ``sleep`` event; ``wall_minus_mono`` as for :func:`wake_of`."""
    d = line.doc
    at = _wall_time(line, "sleep", wall_minus_mono)
    return Sleep(at, d["workload"], d["reason"], d["idle_s"], d["stop_s"], d["how"])
