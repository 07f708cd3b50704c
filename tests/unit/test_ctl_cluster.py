"""``wakeway status`` against a cluster: the scaler's /targets answer and the rows it fills."""

from __future__ import annotations

import re

import pytest

from wakeway.ctl.cluster import parse_scaler_service, parse_targets, ready_replicas, with_counts
from wakeway.ctl.errors import UsageError
from wakeway.kube import Scale
from wakeway.kube.resources import DEPLOYMENTS, STATEFULSETS, Resource
from wakeway.model.objectstatus import ObjectStatus

pytestmark = pytest.mark.unit


def row(name: str) -> ObjectStatus:
    return ObjectStatus(
        namespace="shop",
        name=name,
        state="awake",
        replicas=1,
        ready=1,
        in_flight=None,
        held=None,
        routes_bound=0,
        routes=0,
        last_wake=None,
        last_sleep=None,
        mode="standalone",
        workload=f"Deployment/{name}",
    )


def test_targets_answer_parsed() -> None:
    doc = {"replicas": 2, "targets": {"shop/web": {"inFlight": 3, "held": 1}}}
    assert parse_targets(doc) == {"shop/web": (3, 1)}
    assert parse_targets({"replicas": 0, "targets": {}}) == {}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("not json", "the scaler's /targets answer has no 'targets' object"),
        ({"replicas": 1}, "the scaler's /targets answer has no 'targets' object"),
        ({"targets": []}, "the scaler's /targets answer has no 'targets' object"),
        ({"targets": {"a/b": 3}}, "the scaler's /targets answer: 'a/b' is not {inFlight, held}"),
        (
            {"targets": {"a/b": {"inFlight": 1}}},
            "the scaler's /targets answer: 'a/b' is not {inFlight, held}",
        ),
        (
            {"targets": {"a/b": {"inFlight": "1", "held": 0}}},
            "the scaler's /targets answer: 'a/b' is not {inFlight, held}",
        ),
    ],
)
def test_an_answer_that_does_not_fit_is_named(doc: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_targets(doc)


def test_rows_get_their_counts_and_an_unlisted_target_has_none() -> None:
    rows = with_counts([row("web"), row("api")], {"shop/web": (3, 1), "other/api": (9, 9)})
    assert [(r.name, r.in_flight, r.held) for r in rows] == [("web", 3, 1), ("api", 0, 0)]
    assert rows[1].workload == "Deployment/api"  # the rest of each row unchanged


def test_scaler_service_flag() -> None:
    assert parse_scaler_service("wakeway/wakeway-scaler:metrics") == (
        "wakeway",
        "wakeway-scaler",
        "metrics",
    )
    assert parse_scaler_service("ops/scaler:9092") == ("ops", "scaler", "9092")
    for bad in ("wakeway-scaler:metrics", "wakeway/wakeway-scaler", "a/b/c:1", "/x:1"):
        with pytest.raises(UsageError, match=re.escape(f"--scaler-service {bad!r}: expected")):
            parse_scaler_service(bad)


@pytest.mark.parametrize(
    ("resource", "status", "ready"),
    [
        (DEPLOYMENTS, {"replicas": 1, "readyReplicas": 1}, 1),
        (DEPLOYMENTS, {"replicas": 1, "unavailableReplicas": 1}, 0),  # left out at zero
        (STATEFULSETS, {"replicas": 2}, 0),
        (Resource("example.com", "v1", "things", "Thing"), {"replicas": 3}, 2),  # its /scale
        (Resource("example.com", "v1", "things", "Thing"), {"readyReplicas": 1}, 1),
    ],
)
def test_ready_replicas_left_out_at_zero_are_zero(
    resource: Resource, status: dict[str, int], ready: int
) -> None:
    scale = Scale(replicas=1, ready=2, selector="", resource_version="1")
    assert ready_replicas(resource, {"status": status}, scale) == ready
