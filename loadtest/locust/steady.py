"""Steady warm load: a fixed request rate against a workload that is already awake.

Each user sends ``--user-rate`` requests per second (constant throughput), so ``-u 20`` with the
default rate is about 100 requests/s; the runner wakes the workload before locust starts and its
scaledownPeriod is longer than the test, so no request here should be a cold start.
"""

from __future__ import annotations

from typing import Any

from loadtest.locust.scenario_common import WakewayUser

from locust import constant_throughput


class SteadyUser(WakewayUser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rate = float(getattr(self.environment.parsed_options, "user_rate", 5.0))
        self._pace = constant_throughput(rate)

    def wait_time(self) -> float:
        wait: float = self._pace(self)
        return wait
