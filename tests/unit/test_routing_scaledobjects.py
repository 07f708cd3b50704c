"""HTTPScaledObject claims: repeated header values, conflicts and how they are described."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.routing_fixtures import so
from wakeway.model.exclusions import HeaderRule
from wakeway.model.interceptorroute import parse_interceptorroute
from wakeway.routing.scaledobjects import Conflict, ScaledObjectIndex, headers_match

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "expected", "matches"),
    [
        ("v", "v", True),
        ("a,b", "b", True),  # a repeated header, joined without a space
        ("a, b", "a", True),
        ("x,y", "z", False),
        ("xy", "x", False),
        ("a b", "b", False),  # not a list: one value with a space in it
    ],
)
def test_any_value_of_a_repeated_header_may_match(value: str, expected: str, matches: bool) -> None:
    assert headers_match((HeaderRule("x-h", expected),), {"x-h": value}) is matches


def test_a_claim_made_twice_is_a_conflict_named_in_full() -> None:
    claim: dict[str, Any] = {
        "hosts": ["shop.example.com"],
        "pathPrefixes": ["/api"],
        "headers": [{"name": "x-tenant", "value": "blue"}, {"name": "x-beta"}],
    }
    older = so("older", created="2026-01-01T00:00:00Z", **claim)
    newer = so("newer", created="2026-02-01T00:00:00Z", **claim)
    other_path = so("other", created="2026-01-15T00:00:00Z", hosts=["shop.example.com"])
    catch_all = so("all", created="2026-03-01T00:00:00Z", pathPrefixes=["/"])
    root = so("root", created="2026-03-02T00:00:00Z", pathPrefixes=["/"])
    index = ScaledObjectIndex([newer, other_path, older, catch_all, root])
    assert set(index.conflicts) == {
        Conflict(
            source="HTTPScaledObject",
            claim="host shop.example.com path /api x-tenant=blue x-beta",
            winner="default/older",
            loser="default/newer",
        ),
        Conflict(
            source="HTTPScaledObject",
            claim="host * path /",
            winner="default/all",
            loser="default/root",
        ),
    }


def test_one_object_claiming_the_same_thing_twice_conflicts_with_no_one() -> None:
    rule = {"hosts": ["api.example.com"], "paths": [{"value": "/v1"}]}
    route = parse_interceptorroute(
        {
            "apiVersion": "http.keda.sh/v1beta1",
            "kind": "InterceptorRoute",
            "metadata": {"name": "api", "namespace": "default"},
            "spec": {
                "target": {"service": "api", "port": 80},
                "rules": [rule, dict(rule)],
                "scalingMetric": {"concurrency": {"targetValue": 10}},
            },
        }
    )
    assert ScaledObjectIndex([route]).conflicts == ()
