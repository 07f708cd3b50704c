"""bench_chain's pure parts: per-chain statistics, the table and the verdict against the goal."""

from __future__ import annotations

import math

import pytest
from loadtest.bench_chain import ADDON, KEDA, STANDALONE, Run, summarize, table, verdict

pytestmark = pytest.mark.unit


def runs_of(*ttfb_ms: float, pod_ms: float = 100.0) -> list[Run]:
    """Cold starts with these times to first byte, each pod starting in ``pod_ms``."""
    return [
        Run(scaled=0.01, created=0.02, ready=0.02 + pod_ms / 1000, first=t / 1000) for t in ttfb_ms
    ]


def test_summary_is_nearest_rank_with_the_spread() -> None:
    s = summarize([0.5, 0.1, 0.4, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 1.0])
    assert (s.n, s.p50, s.p90, s.max, s.min) == (10, 0.5, 0.9, 1.0, 0.1)
    assert s.spread == pytest.approx(0.9)


def test_summary_of_nothing_is_not_a_number() -> None:
    s = summarize([])
    assert s.n == 0
    assert math.isnan(s.p50)
    assert math.isnan(s.spread)


def test_met_when_standalone_is_within_half_the_addon_chain() -> None:
    runs = {
        ADDON: runs_of(*[600.0] * 10),
        KEDA: runs_of(*[300.0] * 10),
        STANDALONE: runs_of(*[300.0] * 10),
    }
    ok, line = verdict(runs)
    assert ok
    assert line == (
        "goal met: wakeway standalone / add-on chain, TTFB p50: 0.50 (goal <= 0.5); "
        "wakeway KEDA mode / add-on chain: 0.50"
    )


def test_missed_says_by_how_much() -> None:
    runs = {ADDON: runs_of(400.0), KEDA: runs_of(390.0), STANDALONE: runs_of(250.0)}
    ok, line = verdict(runs)
    assert not ok
    assert line.splitlines() == [
        "goal NOT met: wakeway standalone / add-on chain, TTFB p50: 0.62 (goal <= 0.5); "
        "wakeway KEDA mode / add-on chain: 0.97",
        "missed by 50 ms at p50 (goal: <= 200 ms)",
    ]


def test_a_chain_without_runs_is_not_met() -> None:
    ok, _ = verdict({ADDON: [], KEDA: runs_of(100.0), STANDALONE: runs_of(100.0)})
    assert not ok
    ok, _ = verdict({ADDON: runs_of(600.0), KEDA: [], STANDALONE: []})
    assert not ok


def test_table_rows_ratios_and_hops() -> None:
    runs = {
        ADDON: runs_of(500.0, 700.0, pod_ms=150.0),
        KEDA: runs_of(300.0, 350.0),
        STANDALONE: runs_of(200.0, 260.0),
    }
    lines = table(runs).splitlines()
    assert lines[2] == (
        "| add-on (interceptor + scaler + KEDA) | 2 | 500 | 700 | 700 | 200 | 150 | 1.00 | 1.00 |"
    )
    assert lines[3] == (
        "| wakeway KEDA mode (interceptor + scaler + KEDA) | 2 | 300 | 350 | 350 | 50 | 100 "
        "| 0.60 | 0.50 |"
    )
    assert lines[4] == (
        "| wakeway standalone (interceptor + scaler + operator) | 2 | 200 | 260 | 260 | 60 | 100 "
        "| 0.40 | 0.37 |"
    )
    assert "| pod created -> Ready (pod start) | 150 | 100 | 100 |" in lines
    assert "| Ready -> first byte | 330 | 180 | 80 |" in lines
