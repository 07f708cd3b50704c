"""The primary's side of worker processes: the sum of their counts (``workers.SummedCounts``),
of their metrics, and the routing table it ships to them."""

from __future__ import annotations

import pickle

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tests.unit.routing_fixtures import INTERCEPTOR, route, so
from tests.unit.test_interceptor_counts import Clock
from wakeway.gateway.request import Request
from wakeway.interceptor.counts import TargetCounts
from wakeway.interceptor.workers import SummedCounts, merge_families
from wakeway.routing import RoutingTable


def test_counts_are_the_sum_of_each_workers_latest_report() -> None:
    clock = Clock()
    summed = SummedCounts(clock)
    summed.apply(1, "snapshot", 100.0, {"ns/a": (1, 0, 5, 2.0, None)})
    summed.apply(2, "snapshot", 100.0, {"ns/a": (2, 1, 7, 1.0, None)})
    clock.now = 101.0
    # busy carries on at each worker's in-flight count since its report: 1 + 2 request-seconds
    assert summed.get("ns/a") == TargetCounts(3, 1, 12, 6.0, None)
    summed.apply(2, "change", 101.0, {"ns/a": (0, 0, 7, 3.0, 101.0)})
    assert summed.get("ns/a") == TargetCounts(1, 0, 12, 6.0, None)
    summed.apply(1, "change", 101.0, {"ns/a": (0, 0, 5, 3.0, 100.5)})
    assert summed.get("ns/a") == TargetCounts(0, 0, 12, 6.0, 101.0)  # the latest end


def test_a_wake_is_the_sum_going_from_no_held_request_to_some() -> None:
    summed = SummedCounts(Clock())
    summed.apply(1, "snapshot", 100.0, {})
    summed.apply(2, "snapshot", 100.0, {})
    summed.apply(1, "change", 100.0, {"ns/a": (1, 1, 1, 0.0, None)})
    assert summed.take_changes() == ({"ns/a": TargetCounts(1, 1, 1, 0.0, None)}, True)
    summed.apply(2, "change", 100.0, {"ns/a": (1, 1, 1, 0.0, None)})  # the second holds too
    assert summed.take_changes()[1] is False


def test_a_gone_worker_keeps_its_requests_and_busy_but_not_its_in_flight() -> None:
    clock = Clock()
    summed = SummedCounts(clock)
    summed.apply(1, "snapshot", 100.0, {"ns/a": (2, 2, 4, 1.0, None)})
    summed.apply(2, "snapshot", 100.0, {"ns/a": (0, 0, 3, 1.0, 99.0)})
    summed.take_changes()
    clock.now = 102.0
    summed.retire(1)
    assert summed.take_changes()[0] == {"ns/a": TargetCounts(0, 0, 7, 6.0, 102.0)}
    # a snapshot from a worker replaces what it said before, targets it no longer has included
    summed.apply(2, "snapshot", 102.0, {})
    assert summed.snapshot() == {"ns/a": TargetCounts(0, 0, 4, 5.0, 102.0)}
    assert summed.by_worker() == {2: {}}


def test_metrics_of_the_workers_are_added_up_and_build_info_taken_once() -> None:
    def worker(requests: float, in_flight: float) -> list[object]:
        c = CounterMetricFamily("wakeway_requests", "r", labels=["name"])
        c.add_metric(["a"], requests)
        g = GaugeMetricFamily("wakeway_in_flight", "f", labels=["name"])
        g.add_metric(["a"], in_flight)
        info = GaugeMetricFamily("wakeway_build_info", "b", labels=["version"])
        info.add_metric(["1"], 1)
        return [c, g, info]

    merged = {f.name: f for f in merge_families([worker(3, 1), worker(4, 0)])}  # type: ignore[list-item]
    assert [s.value for s in merged["wakeway_requests"].samples] == [7.0]
    assert [s.value for s in merged["wakeway_in_flight"].samples] == [1.0]
    assert [s.value for s in merged["wakeway_build_info"].samples] == [1.0]


def test_a_routing_table_routes_the_same_after_pickling() -> None:
    """What the primary ships to its workers: a table, pickled whole."""
    web = so("web", routes=[{"name": "site"}])
    api = so("api", routes=[{"name": "site", "ruleName": "api"}])
    by_host = so("by-host", hosts=["*.example.org"], pathPrefixes=["/v1"])
    site = route(
        "site",
        [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]},
            {
                "name": "api",
                "matches": [
                    {
                        "path": {"type": "RegularExpression", "value": "/api/.*"},
                        "headers": [{"name": "X-Tier", "value": "gold"}],
                    }
                ],
            },
        ],
        hostnames=["shop.example.com"],
    )
    table = RoutingTable([api, web, by_host], [site], INTERCEPTOR)
    copy = pickle.loads(pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL))
    requests = [
        Request("GET", "shop.example.com", "/api/cart", "", {"x-tier": "gold"}),
        Request("GET", "shop.example.com", "/api/cart", "", {}),
        Request("GET", "a.example.org", "/v1/x", "", {}),
        Request("GET", "a.example.org", "/v2", "", {}),
    ]
    for request in requests:
        original, shipped = table.lookup(request), copy.lookup(request)
        assert (original and original.key) == (shipped and shipped.key)
    assert dict(copy.targets) == dict(table.targets)
    assert (copy.problems, copy.conflicts) == (table.problems, table.conflicts)
