"""Local mode honours warm windows: a real workload process is started by a window with no
request at all, kept through idle time longer than its quiet period, and stopped after.

The runner reads windows against a virtual wall clock that starts two seconds before the
window, on the night Berlin's clocks spring forward: the window's 02:30 does not exist that
night, so it opens at the change (03:00 CEST, 01:00 UTC)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.component.test_local_mode import SETTINGS, config
from wakeway.local.plan import Phase
from wakeway.local.runner import LocalRunner

pytestmark = pytest.mark.component

OPENS = datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()
LASTS = 3.0

WINDOW = """\
  warmWindows:
    - schedule: "30 2 * * *"
      timeZone: Europe/Berlin
      duration: 3s
"""


async def until(check: Callable[[], bool], within: float) -> float:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
    return time.monotonic()


async def test_a_window_starts_the_workload_keeps_it_idle_and_stops_it_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config(scaledown=1, extra_spec=WINDOW))
    began = time.monotonic()
    start_wall = OPENS - 2.0

    def wall() -> float:
        return start_wall + (time.monotonic() - began)

    runner = LocalRunner([path], SETTINGS, wall_clock=wall)
    await runner.start()
    try:
        slot = runner.slots["default/app"]

        def phase() -> Phase:
            return slot.phase

        assert phase() is Phase.STOPPED
        # Started by the window alone (no request is ever sent), not before it opened.
        await until(lambda: phase() is Phase.READY, within=20)
        assert slot.starts == 1
        assert wall() >= OPENS
        # Kept through the window although idle for longer than scaledownPeriod (1 s).
        while wall() < OPENS + LASTS - 0.3:
            assert phase() is Phase.READY, f"stopped at {wall() - OPENS:.2f}s into the window"
            await asyncio.sleep(0.05)
        # Then stopped, once the window has closed.
        stopped = await until(lambda: phase() is Phase.STOPPED, within=15)
        assert stopped - began >= 2.0 + LASTS - 0.05
        assert slot.starts == 1
    finally:
        await asyncio.wait_for(runner.stop(), 30)


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wakeway.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_validate_names_the_file_and_field_of_a_bad_window(tmp_path: Path) -> None:
    bad = """\
  warmWindows:
    - schedule: "0 9 * * MON-FOO"
      timeZone: Europe/Atlantis
      duration: 8h
"""
    path = tmp_path / "bad.yaml"
    path.write_text(config(extra_spec=bad))
    done = validate(path)
    assert done.returncode == 1
    where = f"{path} document 2 (HTTPScaledObject app): "
    assert f"{where}spec.warmWindows[0].schedule: day of week field 'MON-FOO'" in done.stderr
    assert f"{where}spec.warmWindows[0].timeZone: 'Europe/Atlantis' is not a known" in done.stderr
    path.write_text(config(extra_spec=WINDOW))
    ok = validate(path)
    assert ok.returncode == 0, ok.stderr
