"""Standalone mode follows real traffic on a real API server: steady short requests keep a
workload awake (one wake, no sleep), the quiet period starts when the traffic ends, and a wake is
written straight from the scaler's word, each hop of it logged as an event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import eventually
from tests.cluster.standalone import (
    Standalone,
    conditions,
    event_reasons,
    first_routed,
    make_app,
    ready,
    replicas,
    running_standalone,
)
from wakeway.kube import Kube

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    with running_standalone(cluster, "activity", 18381, 19381, 19383) as s:
        yield s


async def test_steady_short_requests_one_wake_no_sleep_then_one_sleep(
    stack: Standalone, kube: Kube
) -> None:
    ns = await make_app(kube, "steady", scaledownPeriod=2, replicas={"min": 0, "max": 1})
    await ready(kube, ns, "steady")
    host = f"steady.{ns}.test"
    first = await first_routed(stack, host)
    assert first.status == 200
    began = last = time.monotonic()
    sent = 0
    # 50 requests a second for 12 s (6x scaledownPeriod), each answered in about a millisecond.
    while last - began < 12.0 and sent < 700:
        tick = time.monotonic()
        answer = await stack.get(host, timeout=10)
        assert answer.status == 200, answer.body[:200]
        sent += 1
        last = time.monotonic()
        if sent % 25 == 0:  # twice a second: never put to sleep, Active all along
            assert await replicas(kube, ns, "steady") == 1
            assert (await conditions(kube, ns, "steady")).get("Active") == "True"
        await asyncio.sleep(max(0.0, tick + 0.02 - time.monotonic()))
    assert sent >= 500
    assert await event_reasons(kube, ns, "steady") == ["Woken"]

    async def asleep() -> bool:
        return await replicas(kube, ns, "steady") == 0

    await eventually(asleep, "the scale to zero after the traffic", within=60)
    quiet = time.monotonic() - last
    assert quiet >= 2.0  # not before scaledownPeriod counted from the last request

    async def recorded() -> bool:  # the Event is written right after the scale
        return await event_reasons(kube, ns, "steady") == ["Woken", "ScaledToZero"]

    await eventually(recorded, "one wake and one sleep recorded", within=10)


async def test_a_wake_is_one_write_from_the_scalers_word_with_each_hop_logged(
    stack: Standalone, kube: Kube
) -> None:
    ns = await make_app(kube, "hops", scaledownPeriod=300)
    await ready(kube, ns, "hops")
    key = f"{ns}/hops"
    answer = await first_routed(stack, f"hops.{ns}.test")
    assert answer.status == 200
    assert await event_reasons(kube, ns, "hops") == ["Woken"]

    at = stack.wake_hops(key)
    cold, seen, active, sent, woken = (
        at[n] for n in ("cold", "wake-seen", "active", "sent", "woken")
    )
    assert cold <= seen <= active <= sent <= woken  # no read or pass between the word and write
    print(
        f"\nwake hops: interceptor -> scaler {(seen - cold) * 1000:.1f} ms, scaler -> operator "
        f"{(active - seen) * 1000:.1f} ms, operator -> write sent {(sent - active) * 1000:.1f} ms,"
        f" write {(woken - sent) * 1000:.1f} ms; first held request -> /scale written "
        f"{(woken - cold) * 1000:.1f} ms"
    )
