"""HTTPScaledObject parsing: add-on manifests keep their meaning; errors name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from wakeway.model import ModelError
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject

pytestmark = pytest.mark.unit


def doc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "app", "namespace": "team-a"},
        "spec": {"scaleTargetRef": {"name": "app", "service": "app-svc", "port": 8080}},
    }
    base["spec"].update(spec)
    return base


def parse(d: dict[str, Any]) -> HTTPScaledObject:
    return parse_httpscaledobject(d)


def test_addon_minimal_manifest_gets_addon_defaults() -> None:
    so = parse(doc(hosts=["App.Example.com"]))
    assert so.key == "team-a/app"
    assert so.hosts == ("app.example.com",)
    assert so.path_prefixes == ()
    assert so.scale_target.kind == "Deployment"
    assert so.scale_target.api_version == "apps/v1"
    assert so.backend.service == "app-svc"
    assert so.backend.port == 8080
    assert (so.min_replicas, so.max_replicas) == (0, 100)
    assert so.scaling_metric.kind == "concurrency"
    assert so.scaling_metric.target_value == 100
    assert so.scaledown_period == 300
    assert so.failover is None
    assert so.timeouts.condition_wait is None


def test_full_addon_manifest() -> None:
    so = parse(
        doc(
            hosts=["*.example.com", "*"],
            pathPrefixes=["/api"],
            headers=[{"name": "X-Tenant", "value": "a"}, {"name": "X-Debug"}],
            replicas={"min": 1, "max": 5},
            scalingMetric={"requestRate": {"targetValue": 20, "window": "2m", "granularity": "2s"}},
            scaledownPeriod=60,
            initialCooldownPeriod=30,
            coldStartTimeoutFailoverRef={"service": "fallback", "portName": "http"},
            timeouts={"conditionWait": "20s", "responseHeader": "1m30s"},
        )
    )
    assert so.hosts == ("*.example.com", "*")
    assert [(h.name, h.value) for h in so.headers] == [("x-tenant", "a"), ("x-debug", None)]
    assert so.scaling_metric.kind == "requestRate"
    assert (so.scaling_metric.window, so.scaling_metric.granularity) == (120.0, 2.0)
    assert so.failover is not None
    assert so.failover.backend.port_name == "http"
    assert so.failover.timeout == 30.0
    assert so.timeouts.condition_wait == 20.0
    assert so.timeouts.response_header == 90.0
    assert so.initial_cooldown_period == 30


def test_deprecated_target_pending_requests_is_honoured() -> None:
    assert parse(doc(targetPendingRequests=7)).scaling_metric.target_value == 7
    so = parse(doc(targetPendingRequests=7, scalingMetric={"concurrency": {}}))
    assert so.scaling_metric.target_value == 7


def test_our_additions() -> None:
    so = parse(
        doc(
            routes=[{"name": "web"}, {"name": "api", "namespace": "gw", "ruleName": "v1"}],
            coldStart={
                "maxHeldRequests": 50,
                "responseHeader": False,
                "placeholder": {"status": 200, "refreshSeconds": 5},
            },
            timeouts={"connect": "2s", "request": "5m"},
        )
    )
    assert [(r.route_key, r.rule_name) for r in so.routes] == [
        ("team-a/web", None),
        ("gw/api", "v1"),
    ]
    assert so.cold_start.max_held_requests == 50
    assert so.cold_start.response_header is False
    assert so.cold_start.placeholder.enabled
    assert so.cold_start.placeholder.status == 200
    assert so.timeouts.connect == 2.0
    assert so.timeouts.request == 300.0


@pytest.mark.parametrize(
    ("mutate", "path", "fragment"),
    [
        (
            lambda s: s["scaleTargetRef"].pop("port"),
            "spec.scaleTargetRef",
            "'portName' or the 'port'",
        ),
        (
            lambda s: s["scaleTargetRef"].update(portName="http"),
            "spec.scaleTargetRef",
            "either",
        ),
        (lambda s: s["scaleTargetRef"].update(port=70000), "spec.scaleTargetRef.port", "65535"),
        (lambda s: s["scaleTargetRef"].pop("service"), "spec.scaleTargetRef.service", "required"),
        (lambda s: s.update(replicas={"min": 3, "max": 2}), "spec.replicas", "greater than max"),
        (lambda s: s.update(hosts=["bad host"]), "spec.hosts[0]", "not a host name"),
        (lambda s: s.update(hosts="a.example.com"), "spec.hosts", "must be a list"),
        (
            lambda s: s.update(scalingMetric={"concurrency": {}, "requestRate": {}}),
            "spec.scalingMetric",
            "exactly one",
        ),
        (lambda s: s.update(scalingMetric={}), "spec.scalingMetric", "exactly one"),
        (
            lambda s: s.update(scalingMetric={"requestRate": {"window": "soon"}}),
            "spec.scalingMetric.requestRate.window",
            "not a duration",
        ),
        (
            lambda s: s.update(timeouts={"responseHeader": "5 s"}),
            "spec.timeouts.responseHeader",
            "not a duration",
        ),
        (
            lambda s: s.update(headers=[{"name": "A"}, {"name": "a"}]),
            "spec.headers[1].name",
            "twice",
        ),
        (lambda s: s.update(headers=[{"name": "bad name"}]), "spec.headers[0].name", "header"),
        (lambda s: s.update(scaledownPeriod=-1), "spec.scaledownPeriod", "at least 0"),
        (lambda s: s.update(scaledownPeriod="5m"), "spec.scaledownPeriod", "integer"),
        (
            lambda s: s.update(coldStartTimeoutFailoverRef={"service": "x"}),
            "spec.coldStartTimeoutFailoverRef",
            "either",
        ),
        (lambda s: s.update(routes=[{}]), "spec.routes[0].name", "required"),
        (
            lambda s: s.update(coldStart={"placeholder": {"status": 99}}),
            "spec.coldStart.placeholder.status",
            "at least 200",
        ),
    ],
)
def test_errors_name_the_field(mutate: Any, path: str, fragment: str) -> None:
    d = copy.deepcopy(doc())
    mutate(d["spec"])
    with pytest.raises(ModelError) as err:
        parse(d)
    assert err.value.path == path
    assert fragment in err.value.message
    assert str(err.value).startswith(f"{path}: ")


def test_wrong_kind_and_missing_metadata() -> None:
    d = doc()
    d["kind"] = "ScaledObject"
    with pytest.raises(ModelError, match=r"^kind: must be 'HTTPScaledObject'"):
        parse(d)
    d = doc()
    del d["metadata"]["name"]
    with pytest.raises(ModelError, match=r"^metadata\.name: is required"):
        parse(d)


def test_error_can_be_located_in_a_file() -> None:
    err = ModelError("spec.hosts[0]", "bad").located("demo.yaml#2 HTTPScaledObject x")
    assert str(err) == "demo.yaml#2 HTTPScaledObject x: spec.hosts[0]: bad"
