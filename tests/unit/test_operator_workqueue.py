"""The work queue: de-duplication, one reconcile per key at a time, bounded backoff."""

from __future__ import annotations

import asyncio

import pytest

from wakeway.operator.workqueue import ShutDown, WorkQueue

pytestmark = pytest.mark.unit


async def test_a_key_waits_at_most_once() -> None:
    q = WorkQueue()
    for key in ("a", "b", "a", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert [q.try_get(), q.try_get(), q.try_get(), q.try_get()] == ["a", "b", "c", None]


async def test_a_key_in_process_is_not_handed_out_again_until_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.try_get() == "a"
    q.add("a")  # changed while being reconciled
    q.add("a")
    assert q.try_get() is None  # not twice at once
    assert q.processing == {"a"}
    q.done("a")
    assert q.try_get() == "a"  # once more, to see the newest state
    q.done("a")
    assert q.try_get() is None


async def test_done_without_a_new_add_does_not_requeue() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.try_get() == "a"
    q.done("a")
    assert q.try_get() is None
    assert q.processing == frozenset()


async def test_other_keys_flow_while_one_is_in_process() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("b")
    assert q.try_get() == "a"
    q.add("a")
    assert q.try_get() == "b"
    assert q.processing == {"a", "b"}


async def test_backoff_doubles_per_failure_up_to_the_cap_and_forget_resets_it() -> None:
    q = WorkQueue(retry_min=0.5, retry_max=4.0)
    delays = [q.add_rate_limited("a") for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert q.failures("a") == 6
    assert q.retry_delay("b") == 0.5  # per key
    q.forget("a")
    assert q.retry_delay("a") == 0.5
    q.shutdown()


async def test_delayed_add_keeps_the_earliest_timer() -> None:
    q = WorkQueue()
    q.add_after("a", 3600)
    q.add_after("a", 0)  # due now: added at once
    assert q.try_get() == "a"
    q.done("a")
    q.add_after("b", 3600)
    q.add_after("b", 7200)
    assert q.try_get() is None
    q.shutdown()


async def test_get_waits_for_an_add_and_shutdown_stops_workers() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.add("a")
    assert await waiter == "a"
    stopped = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(ShutDown):
        await stopped
    q.add("b")  # ignored after shutdown
    with pytest.raises(ShutDown):
        q.try_get()
