"""Warm windows on a real API server, standalone mode: a window keeps a Deployment up through
idle time and lets it sleep after; what the CRD's rules can check is refused at admission, and
what they cannot (a cron field out of range, an unknown time zone) is a status condition that
names the field.

The window is one that opened at the last whole minute and lasts until ~12 s from now, so the
test needs no wait for a minute boundary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import eventually
from tests.cluster.standalone import (
    Standalone,
    event_reasons,
    make_app,
    ready,
    replicas,
    running_standalone,
)
from wakeway.kube import Invalid, Kube
from wakeway.kube.resources import HTTPSCALEDOBJECTS
from wakeway.model.httpso import parse_httpscaledobject

pytestmark = pytest.mark.cluster

ZONE = "Asia/Kolkata"  # UTC+05:30: a zone that is not UTC, and not on whole hours


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    with running_standalone(cluster, "warm", 18581, 19581, 19582) as s:
        yield s


def iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def status_of(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    obj = await kube.get(HTTPSCALEDOBJECTS, ns, name)
    return dict(obj.get("status") or {})


async def test_a_window_keeps_a_deployment_up_through_idle_time_then_lets_it_sleep(
    stack: Standalone, kube: Kube
) -> None:
    now = time.time()
    opened = now - now % 60  # the last whole minute: the window is open already
    local = datetime.fromtimestamp(opened, ZoneInfo(ZONE))
    ends = now + 12
    lasts = round(ends - opened)
    window: dict[str, Any] = {
        "schedule": f"{local.minute} {local.hour} {local.day} {local.month} *",
        "timeZone": ZONE,
        "duration": f"{lasts}s",
        "minReplicas": 2,
    }
    ns = await make_app(
        kube, "warm", scaledownPeriod=1, replicas={"min": 0, "max": 3}, warmWindows=[window]
    )
    await ready(kube, ns, "warm")

    # No request is ever sent: the window alone brings it to its minReplicas.
    async def warm() -> bool:
        return await replicas(kube, ns, "warm") == 2

    await eventually(warm, "the window to scale the Deployment to 2", within=10)
    status = await status_of(kube, ns, "warm")
    assert status["nextWarmWindow"] == {
        "index": 0,
        "wakeAt": iso(opened),
        "start": iso(opened),
        "end": iso(opened + lasts),
        "minReplicas": 2,
    }
    assert {c["type"]: c["status"] for c in status["conditions"]}["WarmWindows"] == "True"

    # Idle far longer than scaledownPeriod (1 s), it is kept up until the window closes.
    closes = opened + lasts
    while time.time() < closes - 0.5:
        assert await replicas(kube, ns, "warm") == 2, f"{closes - time.time():.1f}s before close"
        await asyncio.sleep(0.25)

    async def asleep() -> bool:
        return await replicas(kube, ns, "warm") == 0

    await eventually(asleep, "the scale to zero after the window", within=20)
    assert time.time() >= closes

    async def recorded() -> bool:  # the Event is written right after the scale
        return await event_reasons(kube, ns, "warm") == ["Scaled", "ScaledToZero"]

    await eventually(recorded, "one scale up for the window and one to zero", within=10)

    async def next_one() -> bool:  # status moves on to the same time next year
        entry = (await status_of(kube, ns, "warm")).get("nextWarmWindow") or {}
        return bool(entry.get("start", "").startswith(str(local.year + 1)))

    await eventually(next_one, "status.nextWarmWindow to show the next opening", within=10)


@pytest.mark.parametrize(
    ("window", "field", "says"),
    [
        ({"schedule": "0 25 * * *", "duration": "1h"}, "schedule", "hour field"),
        (
            {"schedule": "0 9 * * *", "timeZone": "Mars/Olympus_Mons", "duration": "1h"},
            "timeZone",
            "not a known IANA time zone",
        ),
    ],
)
async def test_what_the_crd_cannot_check_is_a_condition_naming_the_field(
    stack: Standalone, kube: Kube, window: dict[str, Any], field: str, says: str
) -> None:
    ns = await make_app(kube, "bad", warmWindows=[window])

    async def reported() -> tuple[str, str] | None:
        for c in (await status_of(kube, ns, "bad")).get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "False":
                return c["reason"], c["message"]
        return None

    reason, message = await eventually(reported, "Ready=False", within=20)
    assert reason == "InvalidSpec"
    assert f"spec.warmWindows[0].{field}: " in message
    assert says in message
    assert await replicas(kube, ns, "bad") == 0


@pytest.mark.parametrize(
    ("window", "field"),
    [
        ({"schedule": "0 9 * *", "duration": "1h"}, "schedule"),
        ({"schedule": "@daily", "duration": "1h"}, "schedule"),
        ({"schedule": "0 9 * * *", "timeZone": "../etc/passwd", "duration": "1h"}, "timeZone"),
        ({"schedule": "0 9 * * *", "duration": "0s"}, "duration"),
        ({"schedule": "0 9 * * *"}, "duration"),
    ],
)
async def test_what_the_crd_can_check_is_refused_naming_the_field(
    stack: Standalone, kube: Kube, window: dict[str, Any], field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await make_app(kube, "refused", warmWindows=[window])
    assert f"spec.warmWindows[0].{field}" in str(caught.value)


async def test_the_api_server_fills_in_the_window_defaults_the_parser_assumes(
    stack: Standalone, kube: Kube
) -> None:
    ns = await make_app(kube, "defaults", warmWindows=[{"schedule": "0 9 * * *", "duration": "1h"}])
    stored = await kube.get(HTTPSCALEDOBJECTS, ns, "defaults")
    assert stored["spec"]["warmWindows"] == [
        {
            "schedule": "0 9 * * *",
            "duration": "1h",
            "timeZone": "UTC",
            "minReplicas": 1,
            "leadTime": "0s",
        }
    ]
    ours = {
        **stored,
        "spec": {**stored["spec"], "warmWindows": [{"schedule": "0 9 * * *", "duration": "1h"}]},
    }
    assert parse_httpscaledobject(stored) == parse_httpscaledobject(ours)
