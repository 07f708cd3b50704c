"""Plain-number histograms, build info, and the operator's figures."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from tests.metrics_text import build_info as info_of
from wakeway.kube.errors import Conflict
from wakeway.observe.metrics import Histogram, build_info, version
from wakeway.operator.stats import OperatorStats


def test_histogram_buckets_are_cumulative_with_inf_and_sum() -> None:
    h = Histogram((0.001, 0.01, 1.0))
    for v in (0.0005, 0.001, 0.005, 2.0):
        h.observe(v)
    assert h.buckets() == [("0.001", 2), ("0.01", 3), ("1.0", 3), ("+Inf", 4)]
    assert h.count == 4
    assert h.total == 0.0005 + 0.001 + 0.005 + 2.0


def test_build_info_names_component_and_package_version() -> None:
    registry = CollectorRegistry()
    registry.register(build_info("operator"))
    info = info_of(generate_latest(registry).decode())
    assert (info["component"], info["version"]) == ("operator", version())
    assert info["python_version"].startswith("3.")


def test_operator_stats_sort_errors_scales_and_wakes() -> None:
    stats = OperatorStats()
    stats.reconciled(0.002)
    stats.reconciled(0.003, Conflict(409, "Conflict", "stale"))
    stats.reconciled(0.004, ValueError("bug"))
    stats.scaled(0)
    stats.scaled(3)
    stats.scaled(0)
    stats.woke(True)
    stats.woke(False)
    assert stats.reconcile_seconds.count == 3
    assert stats.errors == {"Conflict": 1, "internal": 1}
    assert stats.scales == {"sleep": 2, "scale": 1}
    assert stats.fast_wakes == {True: 1, False: 1}
