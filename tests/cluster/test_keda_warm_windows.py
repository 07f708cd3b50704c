"""Interop tier: a warm window in KEDA mode. wakeway's operator writes the window as a cron
trigger on the generated ScaledObject; the real KEDA operator accepts it (its cron library
parses the expressions and the zone), scales the workload to the window's minReplicas with no
traffic at all, and back to zero once the window has closed.

KEDA's cron has minute resolution, so the window is one that opened at the last whole minute
(in Europe/Berlin) and lasts one or two minutes: it closes 30 to 90 s after the test begins.
The ScaledObject's pollingInterval is set to 2 s, as in test_keda_hpa.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import eventually
from tests.interop.keda import condition
from tests.interop.stack import KedaStack, Ports, deployment_at_zero, keda_stack
from wakeway.kube import Kube, NotFound
from wakeway.kube.resources import DEPLOYMENTS, HTTPSCALEDOBJECTS, SCALEDOBJECTS

pytestmark = pytest.mark.interop

PORTS = Ports.block(18582)
POLLING = 2
ZONE = "Europe/Berlin"


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[KedaStack]:
    with keda_stack(cluster, PORTS, "kedawarm") as s:
        yield s


async def replicas(kube: Kube, ns: str) -> int:
    return int((await kube.get(DEPLOYMENTS, ns, "web"))["spec"].get("replicas") or 0)


async def test_keda_keeps_the_window_floor_with_no_traffic_then_goes_back_to_zero(
    stack: KedaStack, kube: Kube
) -> None:
    ns = stack.namespace
    await deployment_at_zero(kube, ns, "web")
    now = time.time()
    opened = now - now % 60
    minutes = 1 if opened + 60 - now >= 30 else 2
    closes = opened + 60 * minutes
    local = datetime.fromtimestamp(opened, ZoneInfo(ZONE))
    windows: list[dict[str, Any]] = [
        {
            "schedule": f"{local.minute} {local.hour} * * *",
            "timeZone": ZONE,
            "duration": f"{minutes}m",
            "minReplicas": 2,
        },
        # Never open during the test: names, ranges and a lead time KEDA must parse too.
        {"schedule": "0 3 * JAN-DEC SAT,SUN", "timeZone": ZONE, "duration": "1h", "leadTime": "5m"},
    ]
    await kube.create(
        HTTPSCALEDOBJECTS,
        ns,
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": "web"},
            "spec": {
                "hosts": ["warm.keda.example.com"],
                "scaleTargetRef": {"name": "web", "service": "web", "port": 80},
                "replicas": {"min": 0, "max": 3},
                "scaledownPeriod": 5,
                "warmWindows": windows,
            },
        },
    )

    async def generated() -> dict[str, Any] | None:
        try:
            return await kube.get(SCALEDOBJECTS, ns, "web")
        except NotFound:
            return None

    so = await eventually(generated, "the generated ScaledObject", within=30)
    crons = [t for t in so["spec"]["triggers"] if t["type"] == "cron"]
    assert [t["metadata"]["timezone"] for t in crons] == [ZONE, ZONE]
    assert crons[1]["metadata"]["start"] == "55 2 * JAN-DEC SAT,SUN"
    await kube.merge_patch(SCALEDOBJECTS, ns, "web", {"spec": {"pollingInterval": POLLING}})

    async def accepted() -> bool:  # KEDA parsed every trigger
        so = await kube.get(SCALEDOBJECTS, ns, "web")
        return condition(so, "Ready") == "True" and so["spec"].get("pollingInterval") == POLLING

    await eventually(accepted, "KEDA to accept the ScaledObject", within=60)

    async def warm() -> bool:
        return await replicas(kube, ns) == 2

    await eventually(warm, "KEDA to scale to the window's minReplicas", within=25)
    assert time.time() < closes, "the window closed before KEDA scaled for it"

    async def asleep() -> bool:
        return await replicas(kube, ns) == 0

    await eventually(asleep, "KEDA to scale to zero after the window", within=closes - now + 60)
    assert time.time() >= closes
