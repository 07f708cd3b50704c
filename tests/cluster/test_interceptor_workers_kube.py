"""Cluster tier: the interceptor in Kubernetes mode with two worker processes. The primary
follows the API server and ships the table and the endpoint view to the workers; the scaler
reads the counts the primary sums. A cold burst over 40 connections (the kernel spreads them
over both workers' SO_REUSEPORT sockets) wakes the workload, every request is answered by its
pod, and the summed counts fall back to zero, so the operator puts it back to sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import eventually
from tests.cluster.standalone import (
    Standalone,
    first_routed,
    make_app,
    replicas,
    running_standalone,
)
from wakeway.kube import Kube

pytestmark = pytest.mark.cluster

PROXY, ADMIN, SCALER = 17411, 17412, 17413


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    workers = {"WAKEWAY_INTERCEPTOR_WORKERS": "2"}
    with running_standalone(cluster, "workers", PROXY, ADMIN, SCALER, interceptor_env=workers) as s:
        yield s


async def test_a_cold_burst_through_two_workers_wakes_once_and_sleeps_again(
    stack: Standalone, kube: Kube
) -> None:
    ns = await make_app(kube, "pair", scaledownPeriod=2, replicas={"min": 0, "max": 2})
    host = f"pair.{ns}.test"
    first = await first_routed(stack, host)  # routed by a worker: the shipped table has it
    assert first.status == 200, first.body[:200]
    burst = await asyncio.gather(*(stack.get(host) for _ in range(40)))
    assert [a.status for a in burst] == [200] * 40
    assert all(a.body.startswith("pair-") for a in burst)

    # The counts the scaler reads are the workers' sum: back at zero, the workload sleeps.
    async def asleep() -> bool:
        return await replicas(kube, ns, "pair") == 0

    await eventually(asleep, "the workload back at zero", within=60)
