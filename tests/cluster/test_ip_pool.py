"""The pod runner's IP pool: no address twice, no quick reuse, a pod keeps a known IP."""

from __future__ import annotations

import pytest

from tests.cluster.harness.podrunner import IpPool

pytestmark = pytest.mark.unit


def test_addresses_are_unique_start_at_the_first_host_and_avoid_quick_reuse() -> None:
    pool = IpPool("10.244.0.0/29", first_host=2)  # hosts .1-.6; pods get .2-.6
    first = [pool.allocate(f"uid-{i}", None) for i in range(3)]
    assert first == ["10.244.0.2", "10.244.0.3", "10.244.0.4"]
    pool.release("10.244.0.2")
    # A freed address comes back only after the rest of the range went round.
    assert pool.allocate("uid-3", None) == "10.244.0.5"
    assert pool.allocate("uid-4", None) == "10.244.0.6"
    assert pool.allocate("uid-5", None) == "10.244.0.2"
    with pytest.raises(RuntimeError, match="exhausted"):
        pool.allocate("uid-6", None)


def test_a_pod_that_already_has_a_free_ip_keeps_it() -> None:
    pool = IpPool("10.244.0.0/24", first_host=10)
    assert pool.allocate("a", "10.244.0.77") == "10.244.0.77"
    # Taken, or outside the pool: a fresh one instead.
    assert pool.allocate("b", "10.244.0.77") == "10.244.0.10"
    assert pool.allocate("c", "10.244.0.1") == "10.244.0.11"
