"""Cold-start burst: every user arrives at once at a workload that is asleep.

Run with many users spawned in about a second (``-u 100 -r 100``). The first request of each user
is held while the workload starts (once, however many wait); afterwards each user keeps sending a
request every 1-2 s to the now-warm workload, so the report contrasts held and warm latency.
"""

from __future__ import annotations

from loadtest.locust.scenario_common import WakewayUser

from locust import between


class ColdBurstUser(WakewayUser):
    wait_time = between(1.0, 2.0)
