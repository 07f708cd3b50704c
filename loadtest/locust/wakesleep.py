"""Wake-sleep cycles: bursts of traffic separated by idle gaps longer than scaledownPeriod.

A load shape alternates ``--on-seconds`` with ``-u`` users (each at ``--user-rate`` requests/s)
and ``--off-seconds`` with no users at all. The runner sets the gap above the workload's
scaledownPeriod, so the workload goes to sleep in every gap and the next burst wakes it: each
cycle shows held requests at its start, then warm ones.
"""

from __future__ import annotations

import time
from typing import Any

from loadtest.locust.scenario_common import WakewayUser

from locust import LoadTestShape, constant_throughput


class WakeSleepUser(WakewayUser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rate = float(getattr(self.environment.parsed_options, "user_rate", 5.0))
        self._pace = constant_throughput(rate)

    def wait_time(self) -> float:
        wait: float = self._pace(self)
        return wait


class OnOff(LoadTestShape):
    # -u, -r and -t keep their meaning: users while on, spawn rate, total run time.
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        options: Any = self.runner.environment.parsed_options
        on, off = float(options.on_seconds), float(options.off_seconds)
        users, rate = int(options.num_users or 1), float(options.spawn_rate or 1)
        elapsed = time.perf_counter() - self.start_time  # what get_run_time() returns
        if options.run_time and elapsed >= options.run_time:
            return None
        return (users, rate) if elapsed % (on + off) < on else (0, rate)
