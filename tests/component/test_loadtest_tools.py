"""The load-test tools still run: the cold-start benchmark with a tiny count, output checked.

Not a performance test: it asserts the structure of the results, never a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]


def test_coldstart_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "coldstart.json"
    args = ["--count", "2", "--burst", "10", "--burst-rounds", "1", "--timeout", "120"]
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench_coldstart", *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TTFB - start-to-ready (added)" in proc.stdout

    results = json.loads(out.read_text())
    assert results["problems"] == []
    assert results["config"]["count"] == 2
    for side in ("wakeway", "baseline"):
        single = results["single"][side]
        for metric in ("ttfb", "start_to_ready", "added"):
            assert len(single[metric]) == 2, (side, metric)
        assert all(x > 0 for x in single["ttfb"] + single["start_to_ready"])
        # The workload cannot answer before it is ready: TTFB covers its own start.
        assert all(t >= r for t, r in zip(single["ttfb"], single["start_to_ready"], strict=True))
    summary = results["summary"]
    for metric in ("ttfb", "start_to_ready", "added"):
        row = summary["single"][metric]
        assert set(row) == {"wakeway", "baseline", "ratio"}
        assert {"p50", "p99"} <= set(row["wakeway"])
        assert {"p50", "p99"} <= set(row["ratio"])
    burst = summary["burst"]["wakeway"]
    assert burst["requests"] == burst["ok"] == 10
    assert burst["starts"] == [1]
    assert results["burst"]["wakeway"][0]["pids"] == 1
    assert summary["burst"]["baseline"]["ok"] == 10
