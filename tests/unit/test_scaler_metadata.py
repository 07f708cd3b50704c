"""Scaler metadata (which object and metric a ScaledObjectRef means), the wire format, settings."""

from __future__ import annotations

from typing import Any

import pytest

from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.model.trigger import (
    ALL_TARGETS,
    DEFAULT_CONCURRENCY_WINDOW,
    MAX_BUCKETS,
    MetadataError,
    MetricTarget,
    parse_metadata,
    scaler_metadata,
)
from wakeway.scaler.settings import ScalerSettings, settings_from_env
from wakeway.scaler.subscriber import Backoff
from wakeway.scaler.wire import CountLine, Counts, WireError, parse_line

pytestmark = pytest.mark.unit


def make_target(**spec: Any) -> HTTPScaledObject:
    ref = {"name": "app", "service": "app", "port": 8080}
    return parse_httpscaledobject(
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": "app", "namespace": "test"},
            "spec": {"scaleTargetRef": ref, **spec},
        }
    )


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"httpScaledObject": "app"},
            MetricTarget("ref-ns/app", "concurrency", 100, DEFAULT_CONCURRENCY_WINDOW),
        ),
        (
            {"httpScaledObject": "app", "namespace": "other", "scalerAddress": "x:1"},
            MetricTarget("other/app", "concurrency", 100, DEFAULT_CONCURRENCY_WINDOW),
        ),
        (
            {"httpScaledObject": "app", "metric": "concurrency", "targetValue": "2.5"},
            MetricTarget("ref-ns/app", "concurrency", 2.5, DEFAULT_CONCURRENCY_WINDOW),
        ),
        (
            {"httpScaledObject": "app", "metric": "requestRate", "targetValue": "50"},
            MetricTarget("ref-ns/app", "requestRate", 50, 60.0, 1.0),
        ),
        (
            {
                "httpScaledObject": "app",
                "metric": "requestRate",
                "window": "2m",
                "granularity": "500ms",
            },
            MetricTarget("ref-ns/app", "requestRate", 100, 120.0, 0.5),
        ),
        (
            {
                "httpScaledObject": "app",
                "metric": "requestRate",
                "window": "30",
                "granularity": "2",
            },
            MetricTarget("ref-ns/app", "requestRate", 100, 30.0, 2.0),
        ),
        (
            {"httpScaledObject": "app", "metric": "requestRate", "window": "10h"},
            MetricTarget("ref-ns/app", "requestRate", 100, 36000.0, 36000.0 / MAX_BUCKETS),
        ),
        (
            {"interceptorTargetPendingRequests": "200"},
            MetricTarget(ALL_TARGETS, "concurrency", 200, DEFAULT_CONCURRENCY_WINDOW),
        ),
        (
            {"httpScaledObject": "app", "window": "30s", "activityWindow": "250ms"},
            MetricTarget("ref-ns/app", "concurrency", 100, 30.0, 1.0, activity_window=0.25),
        ),
    ],
)
def test_parse_metadata(metadata: dict[str, str], expected: MetricTarget) -> None:
    assert parse_metadata(metadata, "ref-ns") == expected


@pytest.mark.parametrize(
    ("metadata", "namespace", "key", "says"),
    [
        ({}, "ns", "httpScaledObject", "required"),
        ({"httpScaledObject": "  "}, "ns", "httpScaledObject", "required"),
        ({"httpScaledObject": "Not_A_Name"}, "ns", "httpScaledObject", "not a valid object name"),
        ({"httpScaledObject": "app"}, "", "namespace", "required"),
        ({"httpScaledObject": "app", "namespace": "a/b"}, "ns", "namespace", "not a valid"),
        ({"httpScaledObject": "app", "metric": "cpu"}, "ns", "metric", "'cpu'"),
        ({"httpScaledObject": "app", "targetValue": "lots"}, "ns", "targetValue", "not a number"),
        ({"httpScaledObject": "app", "targetValue": "0"}, "ns", "targetValue", "positive"),
        ({"httpScaledObject": "app", "targetValue": "-3"}, "ns", "targetValue", "positive"),
        ({"httpScaledObject": "app", "targetValue": "nan"}, "ns", "targetValue", "positive"),
        (
            {"httpScaledObject": "app", "metric": "requestRate", "window": "soon"},
            "ns",
            "window",
            "not a duration",
        ),
        (
            {"httpScaledObject": "app", "metric": "requestRate", "granularity": "0s"},
            "ns",
            "granularity",
            "greater than zero",
        ),
        (
            {"httpScaledObject": "app", "metric": "requestRate", "window": "500ms"},
            "ns",
            "window",
            "shorter than the granularity",
        ),
        ({"interceptorTargetPendingRequests": "x"}, "ns", "interceptorTargetPendingRequests", ""),
        ({"httpScaledObject": "app", "activityWindow": "-1s"}, "ns", "activityWindow", ""),
        ({"httpScaledObject": "app", "activityWindow": "0"}, "ns", "activityWindow", "greater"),
        ({"httpScaledObject": "app", "window": "soon"}, "ns", "window", "not a duration"),
    ],
)
def test_bad_metadata_names_the_key(
    metadata: dict[str, str], namespace: str, key: str, says: str
) -> None:
    with pytest.raises(MetadataError) as info:
        parse_metadata(metadata, namespace)
    assert info.value.key == key
    assert str(info.value).startswith(f"scalerMetadata.{key}: ")
    assert says in str(info.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {},
            {
                "httpScaledObject": "app",
                "namespace": "test",
                "metric": "concurrency",
                "targetValue": "100",
            },
        ),
        (
            {"scalingMetric": {"concurrency": {"targetValue": 7}}},
            {
                "httpScaledObject": "app",
                "namespace": "test",
                "metric": "concurrency",
                "targetValue": "7",
            },
        ),
        (
            {"scalingMetric": {"requestRate": {"targetValue": 2.5, "window": "90s"}}},
            {
                "httpScaledObject": "app",
                "namespace": "test",
                "metric": "requestRate",
                "targetValue": "2.5",
                "window": "90s",
                "granularity": "1s",
            },
        ),
    ],
)
def test_scaler_metadata_round_trips(spec: dict[str, Any], expected: dict[str, str]) -> None:
    httpso = make_target(**spec)
    metadata = scaler_metadata(httpso)
    assert metadata == expected
    target = parse_metadata(metadata, "elsewhere")
    metric = httpso.scaling_metric
    assert target.key == httpso.key
    assert (target.kind, target.target_value) == (metric.kind, metric.target_value)
    if metric.kind == "requestRate":
        assert (target.window, target.granularity) == (metric.window, metric.granularity)


@pytest.mark.parametrize(
    ("requested", "accepted"),
    [
        ("http-ns-app-concurrency", True),
        ("s0-http-ns-app-concurrency", True),
        ("s12-http-ns-app-concurrency", True),
        ("", True),
        ("s0-s1-http-ns-app-concurrency", False),
        ("http-ns-app-requestrate", False),
        ("sx-http-ns-app-concurrency", False),
    ],
)
def test_metric_names_with_and_without_keda_index(requested: str, accepted: bool) -> None:
    target = MetricTarget("ns/app", "concurrency", 1)
    assert target.metric_name == "http-ns-app-concurrency"
    assert target.accepts_metric_name(requested) is accepted


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b'{"type":"snapshot","seq":1,"time":1.5,"wake":false,'
            b'"targets":{"ns/app":{"inFlight":2,"held":1,"requests":9}}}\n',
            CountLine("snapshot", 1, {"ns/app": Counts(2, 1, 9)}),
        ),
        (
            b'{"type":"change","seq":4,"wake":true,"targets":{"ns/app":{"inFlight":1,"held":1,'
            b'"requests":1,"extra":"ignored"}}}',
            CountLine("change", 4, {"ns/app": Counts(1, 1, 1)}, wake=True),
        ),
        (
            b'{"type":"change","seq":5,"targets":{"ns/app":{"inFlight":0,"held":0,'
            b'"requests":3,"busy":0.0025}}}',
            CountLine("change", 5, {"ns/app": Counts(0, 0, 3, 0.0025)}),
        ),
        (b'{"type":"heartbeat","seq":4,"time":3.0}', CountLine("heartbeat", 4)),
    ],
)
def test_parse_line(line: bytes, expected: CountLine) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"type":"other"}', "type"),
        (b'{"type":"change","seq":1}', "targets"),
        (b'{"type":"change","seq":1,"targets":{"a/b":3}}', "targets.a/b"),
        (b'{"type":"change","seq":1,"targets":{"a/b":{"inFlight":-1}}}', "inFlight"),
        (b'{"type":"change","seq":1,"targets":{"a/b":{"requests":1.5}}}', "requests"),
        (b'{"type":"heartbeat","seq":true}', "seq"),
        (b'{"type":"change","seq":1,"targets":{"a/b":{"busy":-0.5}}}', "targets.a/b.busy"),
        (b'{"type":"change","seq":1,"targets":{"a/b":{"busy":"1"}}}', "busy"),
    ],
)
def test_bad_lines(line: bytes, says: str) -> None:
    with pytest.raises(WireError, match=says):
        parse_line(line)


def test_settings_from_env() -> None:
    env = {
        "WAKEWAY_SCALER_LISTEN_PORT": "7000",
        "WAKEWAY_SCALER_STALE_AFTER": "3.5",
        "WAKEWAY_SCALER_INTERCEPTORS": "a:1, b:2,a:1",
    }
    settings = settings_from_env(env)
    assert settings.listen_port == 7000
    assert settings.stale_after == 3.5
    assert settings.interceptors == ("a:1", "b:2")
    assert settings_from_env({}) == ScalerSettings()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"WAKEWAY_SCALER_LISTEN_PORT": "http"}, "WAKEWAY_SCALER_LISTEN_PORT"),
        ({"WAKEWAY_SCALER_STALE_AFTER": "0"}, "WAKEWAY_SCALER_STALE_AFTER: must be greater"),
        ({"WAKEWAY_SCALER_INTERCEPTORS": "nohost"}, "WAKEWAY_SCALER_INTERCEPTORS"),
        ({"WAKEWAY_SCALER_RECONNECT_JITTER": "1.5"}, "WAKEWAY_SCALER_RECONNECT_JITTER"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        settings_from_env(env)


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    backoff = Backoff(0.1, 1.0, 0.2)
    delays = [backoff.next() for _ in range(8)]
    for delay, base in zip(delays, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0], strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    backoff.reset()
    assert backoff.next() <= 0.12
