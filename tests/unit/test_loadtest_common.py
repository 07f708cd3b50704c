"""The benchmarks' shared library: the one percentile definition, ratios, event parsing."""

from __future__ import annotations

import json
import logging
import math

import pytest
from loadtest.common import (
    LogLine,
    Sleep,
    Wake,
    dist,
    format_ratio,
    free_ports,
    parse_log_line,
    percentile,
    ratio,
    sleep_of,
    wake_of,
)

from wakeway.model.logs import JsonFormatter, event

pytestmark = pytest.mark.unit

ONE_TO_100 = [float(i) for i in range(1, 101)]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        # nearest rank: the ceil(q * n)-th smallest sample
        (ONE_TO_100, 0.50, 50.0),
        (ONE_TO_100, 0.99, 99.0),
        (ONE_TO_100, 1.00, 100.0),
        (ONE_TO_100, 0.07, 7.0),  # 0.07 * 100 is 7.000000000000001 in floating point
        (ONE_TO_100, 0.0, 1.0),
        ([float(i) for i in range(1, 21)], 0.99, 20.0),  # 20 samples: p99 is the maximum
        ([float(i) for i in range(1, 21)], 0.50, 10.0),
        ([float(i) for i in range(1, 21)], 0.90, 18.0),
        ([3.0, 1.0, 2.0], 0.5, 2.0),  # unsorted input
        ([5.0], 0.99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),  # a measured value, never interpolated (not 2.5)
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_refuses_no_samples_and_out_of_range_quantiles() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        percentile([1.0], 99)


def test_dist_summarises_and_is_nan_without_samples() -> None:
    assert dist(ONE_TO_100) == {"n": 100, "p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    empty = dist([])
    assert empty["n"] == 0
    assert all(math.isnan(empty[k]) for k in ("p50", "p90", "p99", "max"))


@pytest.mark.parametrize(
    ("value", "baseline", "text"),
    [
        (3.0, 2.0, "1.50"),
        (1.0, 3.0, "0.33"),
        (0.0, 2.0, "0.00"),
        (1.0, 0.0, "-"),  # no baseline to compare with
        (1.0, None, "-"),
        (None, 1.0, "-"),
        (float("nan"), 1.0, "-"),
    ],
)
def test_ratio_formatting(value: float | None, baseline: float | None, text: str) -> None:
    assert format_ratio(value, baseline) == text


def test_ratio_is_nan_without_a_positive_baseline() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(1.0, -1.0))


def test_free_ports_are_distinct() -> None:
    ports = free_ports(8)
    assert len(set(ports)) == 8
    assert all(0 < p < 65536 for p in ports)


def json_line(message: str, level: int = logging.INFO, **extra: object) -> str:
    record = logging.LogRecord("wakeway.local", level, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return JsonFormatter().format(record)


def test_a_wake_event_as_the_product_writes_it_is_read_back() -> None:
    extra = event("wake", workload="default/app", pid=42, port=8123, ready_s=0.25, waited_s=0.3)
    line = parse_log_line(json_line("wake default/app: ...", **extra))
    assert line is not None
    assert line.event == "wake"
    assert not line.problem
    wake = wake_of(line, 1000.0)
    assert wake.at == pytest.approx(extra["mono"] + 1000.0, abs=1e-5)  # on the reader's clock
    assert wake == Wake(wake.at, "default/app", pid=42, port=8123, ready_in=0.25, waited=0.3)


def test_a_sleep_event_is_read_back() -> None:
    extra = event(
        "sleep", workload="default/app", reason="idle", idle_s=3.0, stop_s=0.01, how="SIGTERM"
    )
    line = parse_log_line(json_line("sleep default/app: ...", **extra))
    assert line is not None
    sleep = sleep_of(line, 0.0)
    assert sleep.at == pytest.approx(extra["mono"], abs=1e-5)
    assert sleep == Sleep(
        sleep.at, "default/app", "idle", idle_for=3.0, stopped_in=0.01, how="SIGTERM"
    )


def test_the_listening_event_carries_both_ports() -> None:
    extra = event("listening", host="127.0.0.1", port=1234, admin_host="127.0.0.1", admin_port=5)
    line = parse_log_line(json_line("local mode listening ...", **extra))
    assert line is not None
    assert (line.event, line.doc["port"], line.doc["admin_port"]) == ("listening", 1234, 5)


def test_plain_lines_and_problems() -> None:
    line = parse_log_line(json_line("no event here"))
    assert line is not None
    assert (line.event, line.mono, line.problem) == (None, None, False)
    warning = parse_log_line(json_line("careful", logging.WARNING))
    assert warning is not None
    assert warning.problem
    assert parse_log_line("Traceback (most recent call last):") is None
    assert parse_log_line("[1, 2]") is None  # JSON, but not a log object
    assert parse_log_line("") is None


def test_an_event_of_another_kind_is_not_taken_for_a_wake() -> None:
    line = parse_log_line(json.dumps({"level": "INFO", "event": "sleep", "mono": 1.0}))
    assert isinstance(line, LogLine)
    with pytest.raises(ValueError, match="not a wake event"):
        wake_of(line, 0.0)
