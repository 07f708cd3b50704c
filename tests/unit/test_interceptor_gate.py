"""The cold-start gate core: hold, release in arrival order, limits, expiry, cancellation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wakeway.interceptor.gate import GateCore, Held, Rejected

pytestmark = pytest.mark.unit


def admit(
    gate: GateCore[str],
    item: str,
    target: str = "ns/a",
    backend: str = "ns/a-svc:80",
    *,
    limit: int = 10,
    now: float = 0.0,
    wait: float = 20.0,
) -> Held | Rejected:
    return gate.admit(
        item, target=target, backend=backend, limit=limit, now=now, deadline=now + wait
    )


def test_held_requests_are_counted_per_target_and_overall() -> None:
    gate: GateCore[str] = GateCore(global_limit=100)
    assert admit(gate, "r1") == Held(deadline=20.0)
    assert admit(gate, "r2") == Held(deadline=20.0)
    assert admit(gate, "r3", target="ns/b", backend="ns/b-svc:80") == Held(20.0)
    assert (gate.held(), gate.held("ns/a"), gate.held("ns/b")) == (3, 2, 1)


def test_release_returns_arrival_order_across_targets_sharing_a_backend() -> None:
    gate: GateCore[str] = GateCore(global_limit=100)
    for i, target in enumerate(["ns/a", "ns/b", "ns/a", "ns/b", "ns/a"]):
        admit(gate, f"r{i}", target=target, backend="ns/shared:80")
    admit(gate, "other", target="ns/c", backend="ns/c:80")
    assert gate.release("ns/shared:80") == ["r0", "r1", "r2", "r3", "r4"]
    assert gate.release("ns/shared:80") == []
    assert (gate.held(), gate.held("ns/a"), gate.held("ns/c")) == (1, 0, 1)
    assert gate.backends() == ["ns/c:80"]


@pytest.mark.parametrize(
    ("limit", "already", "global_limit", "expected"),
    [
        (2, 0, 10, "held"),
        (2, 1, 10, "held"),
        (2, 2, 10, "target"),
        (5, 3, 3, "global"),
        (5, 2, 3, "held"),
    ],
)
def test_limits(limit: int, already: int, global_limit: int, expected: str) -> None:
    gate: GateCore[str] = GateCore(global_limit=global_limit)
    for i in range(already):
        assert isinstance(admit(gate, f"r{i}", limit=limit), Held)
    decision = admit(gate, "new", limit=limit)
    if expected == "held":
        assert isinstance(decision, Held)
    else:
        assert isinstance(decision, Rejected)
        assert decision.scope == expected
        assert decision.retry_after >= 1
        assert "ns/a is not ready" in decision.reason
        assert "new" not in gate


def test_rejection_reasons_say_why() -> None:
    gate: GateCore[str] = GateCore(global_limit=1)
    admit(gate, "a", limit=5)
    per_target = admit(gate, "b", limit=1)
    assert isinstance(per_target, Rejected)
    assert per_target.reason == "ns/a is not ready and already holds 1 waiting requests (limit 1)"
    overall = admit(gate, "c", target="ns/z", backend="ns/z:1")
    assert isinstance(overall, Rejected)
    assert overall.reason == (
        "ns/z is not ready and the interceptor already holds 1 waiting requests in all (limit 1)"
    )


def test_a_limit_below_one_is_refused_since_nothing_held_would_never_wake() -> None:
    with pytest.raises(ValueError, match="at least 1, got 0"):
        GateCore(global_limit=0)
    gate: GateCore[str] = GateCore(global_limit=10)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        admit(gate, "x", limit=0)
    assert gate.held() == 0


def test_retry_after_is_the_time_until_the_oldest_held_request_expires() -> None:
    gate: GateCore[str] = GateCore(global_limit=10)
    admit(gate, "a", limit=1, now=0.0, wait=12.0)
    decision = admit(gate, "b", limit=1, now=4.5)
    assert isinstance(decision, Rejected)
    assert decision.retry_after == 8


def test_expire_takes_due_items_earliest_first_and_next_deadline_follows() -> None:
    gate: GateCore[str] = GateCore(global_limit=10)
    admit(gate, "late", now=0.0, wait=30.0)
    admit(gate, "early", now=1.0, wait=5.0, target="ns/b", backend="b")
    admit(gate, "mid", now=2.0, wait=10.0)
    assert gate.next_deadline() == 6.0
    assert gate.expire(5.9) == []
    assert gate.expire(12.0) == ["early", "mid"]
    assert gate.next_deadline() == 30.0
    assert gate.held("ns/a") == 1
    assert gate.expire(100.0) == ["late"]
    assert gate.next_deadline() is None


def test_cancelled_and_released_items_never_expire() -> None:
    gate: GateCore[str] = GateCore(global_limit=10)
    admit(gate, "a", wait=1.0)
    admit(gate, "b", wait=2.0, target="ns/b", backend="b")
    assert gate.cancel("a")
    assert not gate.cancel("a")
    assert gate.release("b") == ["b"]
    assert gate.next_deadline() is None
    assert gate.expire(100.0) == []
    assert gate.held() == 0


def test_release_target_answers_only_that_target_in_order() -> None:
    gate: GateCore[str] = GateCore(global_limit=10)
    for i, target in enumerate(["ns/a", "ns/b", "ns/a"]):
        admit(gate, f"r{i}", target=target, backend="shared")
    assert gate.release_target("ns/a") == ["r0", "r2"]
    assert gate.release("shared") == ["r1"]


def test_an_item_cannot_be_held_twice() -> None:
    gate: GateCore[str] = GateCore(global_limit=10)
    admit(gate, "a")
    with pytest.raises(ValueError, match=r"^item is already held$"):
        admit(gate, "a")


def test_equal_deadlines_expire_in_arrival_order() -> None:
    gate: GateCore[str] = GateCore(global_limit=10)
    arrivals = ["zulu", "mike", "alpha"]  # not in sorted order: the order is arrival's
    for item in arrivals:
        admit(gate, item, wait=5.0, target=f"ns/{item}", backend=item)
    assert gate.next_deadline() == 5.0
    assert gate.expire(5.0) == arrivals


def test_a_request_held_again_keeps_only_its_new_deadline() -> None:
    gate: GateCore[str] = GateCore(global_limit=10)
    admit(gate, "a", wait=1.0)
    admit(gate, "b", wait=5.0, target="ns/b", backend="b")
    assert gate.cancel("a")
    admit(gate, "a", now=0.5, wait=9.5)  # deadline 10, its old one (1) still in the heap
    assert gate.next_deadline() == 5.0
    assert gate.expire(2.0) == []
    assert gate.expire(5.0) == ["b"]
    assert gate.expire(10.0) == ["a"]


@pytest.mark.parametrize(
    ("deadline", "now", "retry_after"),
    [(12.0, 11.5, 1), (12.0, 11.0, 1), (12.0, 10.5, 2), (100.0, 0.0, 60), (61.0, 0.0, 60)],
)
def test_retry_after_is_at_least_one_second_and_at_most_a_minute(
    deadline: float, now: float, retry_after: int
) -> None:
    gate: GateCore[str] = GateCore(global_limit=10)
    admit(gate, "a", limit=1, now=0.0, wait=deadline)
    decision = admit(gate, "b", limit=1, now=now)
    assert isinstance(decision, Rejected)
    assert decision.retry_after == retry_after


def test_retry_after_reads_the_backend_for_a_target_and_every_hold_for_the_gate() -> None:
    gate: GateCore[str] = GateCore(global_limit=3)
    admit(gate, "x", target="ns/x", backend="x", now=0.0, wait=5.0)  # the earliest of all
    admit(gate, "a", target="ns/a", backend="a", now=0.0, wait=30.0, limit=2)
    admit(gate, "a2", target="ns/a", backend="a", now=1.0, wait=30.0, limit=2)
    full_target = admit(gate, "a3", target="ns/a", backend="a", now=2.0, limit=2)
    assert isinstance(full_target, Rejected)
    assert (full_target.scope, full_target.retry_after) == ("target", 28)  # a's first, at 30
    full_gate = admit(gate, "y", target="ns/y", backend="y", now=2.0)
    assert isinstance(full_gate, Rejected)
    assert (full_gate.scope, full_gate.retry_after) == ("global", 3)  # x's, at 5
    # A target full with its requests held for another backend (a failover): 1 s.
    elsewhere = admit(gate, "a4", target="ns/a", backend="a-fallback", now=2.0, limit=2)
    assert isinstance(elsewhere, Rejected)
    assert elsewhere.retry_after == 1


# -- property: the gate agrees with a naive model under any sequence of operations -----------


@dataclass
class Model:
    held: list[tuple[str, str, str, float]] = field(
        default_factory=list
    )  # item, target, backend, deadline


ops = st.lists(
    st.one_of(
        st.tuples(st.just("admit"), st.sampled_from("ab"), st.sampled_from("xy"), st.floats(0, 10)),
        st.tuples(st.just("release"), st.sampled_from("xy")),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("expire"), st.floats(0, 20)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_gate_matches_a_naive_model(operations: list[tuple[object, ...]]) -> None:
    per_target, overall = 3, 5
    gate: GateCore[str] = GateCore(global_limit=overall)
    model = Model()
    now = 0.0
    for n, op in enumerate(operations):
        if op[0] == "admit":
            _, target, backend, wait = op
            assert isinstance(target, str)
            assert isinstance(backend, str)
            assert isinstance(wait, float)
            item = f"i{n}"
            count = sum(1 for h in model.held if h[1] == target)
            decision = gate.admit(
                item, target=target, backend=backend, limit=per_target, now=now, deadline=now + wait
            )
            if count >= per_target or len(model.held) >= overall:
                assert isinstance(decision, Rejected)
            else:
                assert decision == Held(now + wait)
                model.held.append((item, target, backend, now + wait))
        elif op[0] == "release":
            backend = op[1]
            expected = [h[0] for h in model.held if h[2] == backend]
            assert gate.release(str(backend)) == expected
            model.held = [h for h in model.held if h[2] != backend]
        elif op[0] == "cancel":
            index = op[1]
            assert isinstance(index, int)
            if model.held:
                item = model.held.pop(index % len(model.held))[0]
                assert gate.cancel(item)
        else:
            later = op[1]
            assert isinstance(later, float)
            now = max(now, later)
            due = sorted((h for h in model.held if h[3] <= now), key=lambda h: h[3])
            assert sorted(gate.expire(now)) == sorted(h[0] for h in due)
            model.held = [h for h in model.held if h[3] > now]
        assert gate.held() == len(model.held)
        for target in "ab":
            assert gate.held(target) == sum(1 for h in model.held if h[1] == target)
        deadlines = [h[3] for h in model.held]
        assert gate.next_deadline() == (min(deadlines) if deadlines else None)
