"""InterceptorRoute (``http.keda.sh/v1beta1``, the add-on's kind since v0.14): parsed into the
one target model, validated field by field, matched with the add-on's precedence, counted under
the add-on's metric names; and the CRD in crds/ kept in step with the parser."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_crd_schema import Reads, apply_defaults, leaves, walk
from wakeway.cli import main
from wakeway.gateway.request import Request
from wakeway.model import ModelError
from wakeway.model.httpso import parse_httpscaledobject
from wakeway.model.interceptorroute import API_VERSION, KIND, parse_interceptorroute
from wakeway.model.meta import ObjectMeta
from wakeway.model.service import Service, ServicePort
from wakeway.model.trigger import route_key, route_metrics
from wakeway.operator.plan import InvalidSpec
from wakeway.operator.routestatus import plan_route_status
from wakeway.routing import RoutingTable, merge_targets

pytestmark = pytest.mark.unit

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "http.keda.sh_interceptorroutes.yaml"


def route(name: str = "web", created: str = "2026-01-01T00:00:00Z", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "target": {"service": name, "port": 8080},
        "scalingMetric": {"concurrency": {"targetValue": 10}},
    }
    body.update(spec)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": "app", "creationTimestamp": created},
        "spec": body,
    }


def problems_of(doc: dict[str, Any]) -> str:
    with pytest.raises(ModelError) as info:
        parse_interceptorroute(doc)
    return str(info.value)


# -- parsing -----------------------------------------------------------------------------------


def test_an_add_on_manifest_reads_into_the_target_model() -> None:
    doc = route(
        rules=[
            {
                "hosts": ["web.example.com", "*.web.example.com"],
                "paths": [{"value": "/api"}, {"value": "v2"}],
                "headers": [{"name": "X-Tenant", "value": "a"}, {"name": "X-Debug"}],
            },
            {"hosts": ["*"]},
        ],
        scalingMetric={
            "concurrency": {"targetValue": 5},
            "requestRate": {"targetValue": 20, "window": "30s", "granularity": "500ms"},
        },
        coldStart={"fallback": {"service": {"name": "static", "portName": "http"}}},
        timeouts={"readiness": "15s", "request": "1m", "responseHeader": "0s"},
    )
    t = parse_interceptorroute(doc)
    assert (t.key, t.source, t.scaled_by_keda_only) == ("app/web", "InterceptorRoute", True)
    assert t.backend.describe() == "web:8080"
    assert t.match_rules[0].hosts == ("web.example.com", "*.web.example.com")
    assert t.match_rules[0].path_prefixes == ("/api", "/v2")  # "v2" means "/v2", as in the add-on
    assert [(h.name, h.value) for h in t.match_rules[0].headers] == [
        ("x-tenant", "a"),
        ("x-debug", None),
    ]
    assert t.match_rules[1].hosts == ("*",)
    assert [(m.kind, m.target_value, m.window, m.granularity) for m in t.metrics] == [
        ("concurrency", 5.0, 60.0, 1.0),
        ("requestRate", 20.0, 30.0, 0.5),
    ]
    assert t.failover is not None
    assert (t.failover.backend.describe(), t.failover.timeout) == ("static:http", 15.0)
    assert (t.timeouts.condition_wait, t.timeouts.request) == (15.0, 60.0)
    assert t.timeouts.response_header is None  # 0s: the interceptor's own setting


def test_a_fallback_without_a_readiness_timeout_waits_30_seconds() -> None:
    fallback = {"fallback": {"service": {"name": "static", "port": 80}}}
    for timeouts in ({}, {"readiness": "0s"}):
        t = parse_interceptorroute(route(coldStart=fallback, timeouts=timeouts))
        assert t.failover is not None
        assert t.failover.timeout == 30.0


def test_a_placeholder_answers_at_once_exactly_as_written_and_the_fallback_is_never_reached() -> (
    None
):
    response = {
        "statusCode": 202,
        "body": "warming up",
        "headers": {"Content-Type": "text/html", "Retry-After": "5"},
    }
    doc = route(
        coldStart={
            "fallback": {"service": {"name": "static", "port": 80}},
            "placeholder": {"response": response},
        }
    )
    t = parse_interceptorroute(doc)
    ph = t.cold_start.placeholder
    assert (ph.enabled, ph.immediate, ph.status, ph.body) == (True, True, 202, "warming up")
    assert (ph.content_type, ph.headers) == ("text/html", (("Retry-After", "5"),))
    assert t.failover is None
    default = parse_interceptorroute(route(coldStart={"placeholder": {"response": {}}}))
    assert (default.cold_start.placeholder.status, default.cold_start.placeholder.body) == (503, "")


def test_no_rules_routes_nothing() -> None:
    t = parse_interceptorroute(route())
    assert t.match_rules == ()
    assert RoutingTable([t]).resolve(Request("GET", "any.example.com", "/")) is None


def test_every_problem_is_reported_at_once_naming_its_field() -> None:
    doc = route(
        rules=[{"host": ["a.example.com"], "paths": [{"value": "/a?b"}]}],
        target={"service": "web", "port": 80, "portName": "http"},
        scalingMetric={},
        coldStart={
            "placeholder": {"response": {"bodyFromConfigMap": {"name": "page"}}},
        },
        timeouts={"readines": "5s"},
    )
    text = problems_of(doc)
    for expected in (
        "spec.rules[0].host: unknown field",
        "spec.rules[0].paths[0].value",
        "spec.target: must define either the 'portName' or the 'port'",
        "spec.scalingMetric: at least one of 'concurrency' or 'requestRate' must be set",
        "spec.coldStart.placeholder.response.bodyFromConfigMap: not supported",
        "spec.timeouts.readines: unknown field; did you mean `readiness`?",
    ):
        assert expected in text, text


def test_cold_start_needs_a_fallback_or_a_placeholder() -> None:
    assert "spec.coldStart: at least one of 'fallback' or 'placeholder'" in problems_of(
        route(coldStart={})
    )


# -- matching: the add-on's precedence ---------------------------------------------------------


def _resolve(table: RoutingTable, host: str, path: str = "/", **headers: str) -> str | None:
    found = table.resolve(Request("GET", host, path, "", headers))
    return None if found is None else found.target.name


def test_matching_precedence_is_the_add_ons() -> None:
    table = RoutingTable(
        [
            parse_interceptorroute(route("exact", rules=[{"hosts": ["a.example.com"]}])),
            parse_interceptorroute(route("wild", rules=[{"hosts": ["*.example.com"]}])),
            parse_interceptorroute(route("deeper", rules=[{"hosts": ["*.a.example.com"]}])),
            parse_interceptorroute(
                route("api", rules=[{"hosts": ["a.example.com"], "paths": [{"value": "/api"}]}])
            ),
            parse_interceptorroute(
                route(
                    "tenant",
                    rules=[
                        {
                            "hosts": ["a.example.com"],
                            "paths": [{"value": "/api"}],
                            "headers": [{"name": "x-tenant", "value": "t1"}],
                        },
                        {"hosts": ["t1.example.org"], "headers": [{"name": "x-any"}]},
                    ],
                )
            ),
            parse_interceptorroute(route("all", rules=[{"hosts": ["*"]}])),
        ]
    )
    assert _resolve(table, "a.example.com") == "exact"  # exact host over wildcard
    assert _resolve(table, "b.example.com") == "wild"
    assert _resolve(table, "x.a.example.com") == "deeper"  # the more specific wildcard
    assert _resolve(table, "a.example.com", "/api/v1") == "api"  # the longest prefix
    assert _resolve(table, "a.example.com", "/apix") == "exact"  # element-wise
    assert _resolve(table, "a.example.com", "/api/v1", **{"x-tenant": "t1"}) == "tenant"
    assert _resolve(table, "a.example.com", "/api/v1", **{"x-tenant": "t2"}) == "api"
    assert _resolve(table, "t1.example.org", **{"x-any": "whatever"}) == "tenant"  # 2nd rule
    assert _resolve(table, "t1.example.org") == "all"  # header absent: the catch-all
    assert _resolve(table, "elsewhere.net") == "all"


def test_more_headers_with_values_win_a_tie() -> None:
    presence = route("presence", rules=[{"headers": [{"name": "x-a"}]}])
    valued = route(
        "valued", "2026-06-01T00:00:00Z", rules=[{"headers": [{"name": "x-a", "value": "1"}]}]
    )
    table = RoutingTable([parse_interceptorroute(presence), parse_interceptorroute(valued)])
    assert _resolve(table, "h", **{"x-a": "1"}) == "valued"  # newer, but more specific
    assert _resolve(table, "h", **{"x-a": "2"}) == "presence"


def test_an_interceptor_route_replaces_the_http_scaled_object_of_its_name() -> None:
    httpso = parse_httpscaledobject(
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": "web", "namespace": "app"},
            "spec": {"hosts": ["old.example.com"], "scaleTargetRef": {"service": "w", "port": 1}},
        }
    )
    ir = parse_interceptorroute(route(rules=[{"hosts": ["new.example.com"]}]))
    targets = merge_targets([httpso], [ir])
    assert targets == [ir]
    table = RoutingTable(targets)
    assert _resolve(table, "new.example.com") == "web"
    assert _resolve(table, "old.example.com") is None


# -- the scaler's view -------------------------------------------------------------------------


def test_trigger_metadata_names_the_route_and_its_metrics_carry_the_add_ons_names() -> None:
    assert route_key({"interceptorRoute": "web", "scalerAddress": "s:9091"}, "app") == "app/web"
    assert route_key({"httpScaledObject": "web"}, "app") is None
    both = {
        "concurrency": {"targetValue": 4},
        "requestRate": {"targetValue": 8, "window": "2m", "granularity": "2s"},
    }
    metrics = route_metrics(parse_interceptorroute(route(scalingMetric=both)))
    assert [(m.metric_name, m.kind, m.target_value, m.window) for m in metrics] == [
        ("http_web_concurrency", "concurrency", 4.0, 10.0),
        ("http_web_rate", "requestRate", 8.0, 120.0),
    ]
    assert metrics[0].accepts_metric_name("s0-http_web_concurrency")
    assert not metrics[0].accepts_metric_name("s1-http_web_rate")


# -- the CRD -----------------------------------------------------------------------------------


def crd() -> Any:
    docs = [d for d in yaml.safe_load_all(CRD_PATH.read_text()) if d]
    (doc,) = docs
    return doc


def spec_schema() -> Any:
    (version,) = crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]


FULL = route(
    rules=[
        {
            "hosts": ["a.example.com"],
            "paths": [{"value": "/a"}],
            "headers": [{"name": "x-a", "value": "1"}],
        }
    ],
    scalingMetric={
        "concurrency": {"targetValue": 1},
        "requestRate": {"targetValue": 1, "window": "1m", "granularity": "1s"},
    },
    coldStart={
        "fallback": {"service": {"name": "f", "port": 80}},
        "placeholder": {
            "response": {"statusCode": 503, "body": "b", "headers": {"X-A": "1"}},
        },
    },
    timeouts={"readiness": "1s", "request": "1s", "responseHeader": "1s"},
)
FULL["spec"]["target"]["portName"] = "http"  # both: read (and refused), as the CRD declares both
WITH_CONFIGMAP = route(
    coldStart={"placeholder": {"response": {"bodyFromConfigMap": {"name": "c", "key": "k"}}}}
)


def _read(*docs: dict[str, Any]) -> set[str]:
    read: set[str] = set()
    for doc in docs:
        with contextlib.suppress(ModelError):  # refused, but read all the same
            parse_interceptorroute(Reads(copy.deepcopy(doc), "", read))
    return {p.removeprefix(".") for p in read if p.startswith(".spec.")}


def test_crd_identity_and_printer_columns_are_the_add_ons() -> None:
    doc = crd()
    assert doc["metadata"]["name"] == "interceptorroutes.http.keda.sh"
    (version,) = doc["spec"]["versions"]
    assert f"{doc['spec']['group']}/{version['name']}" == API_VERSION
    assert doc["spec"]["names"]["kind"] == KIND
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "TargetService",
        "Ready",
        "Age",
    ]
    for path, node in walk(version["schema"]["openAPIV3Schema"], ""):
        assert "type" in node, f"{path or '<root>'} has no type"


def test_parser_reads_only_fields_the_schema_declares() -> None:
    declared = {p for p, _ in walk(spec_schema(), "spec")}
    maps = tuple(
        f"{p}." for p, node in walk(spec_schema(), "spec") if "additionalProperties" in node
    )
    undeclared = {p for p in _read(FULL, WITH_CONFIGMAP) - declared if not p.startswith(maps)}
    assert not undeclared, f"the parser reads fields the CRD does not declare: {undeclared}"


def test_schema_declares_nothing_the_parser_ignores() -> None:
    read = _read(FULL, WITH_CONFIGMAP)
    # bodyFromConfigMap is refused whole (wakeway reads no ConfigMaps): its leaves are not read.
    refused = {
        "spec.coldStart.placeholder.response.bodyFromConfigMap.name",
        "spec.coldStart.placeholder.response.bodyFromConfigMap.key",
    }
    ignored = {
        leaf
        for leaf in leaves(spec_schema(), "spec") - refused
        if leaf not in read and leaf.removesuffix("[]") not in read
    }
    assert not ignored, f"the CRD declares fields the parser never reads: {ignored}"


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"scalingMetric": {"requestRate": {"targetValue": 3}}},
        {"coldStart": {"placeholder": {"response": {"body": "x"}}}},
    ],
    ids=["minimal", "request-rate", "placeholder"],
)
def test_schema_defaults_mean_what_the_parser_does_when_absent(spec: dict[str, Any]) -> None:
    doc = route(**spec)
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert parse_interceptorroute(apply_defaults(doc, schema)) == parse_interceptorroute(doc)


# -- the operator's status ---------------------------------------------------------------------


def _service(name: str, *ports: tuple[str, int]) -> Service:
    return Service(ObjectMeta("app", name), "ClusterIP", tuple(ServicePort(n, p) for n, p in ports))


def _ready(status: dict[str, Any] | None) -> tuple[str, str, str]:
    assert status is not None
    (cond,) = status["conditions"]
    assert cond["type"] == "Ready"
    return cond["status"], cond["reason"], cond["message"]


def test_ready_is_reconciled_as_in_the_add_on_and_a_steady_state_writes_nothing() -> None:
    doc = route()
    doc["metadata"]["generation"] = 3
    r = parse_interceptorroute(doc)
    services = {"web": _service("web", ("http", 8080))}
    status = plan_route_status(r, services, {}, 1_000_000.0)
    assert _ready(status)[:2] == ("True", "Reconciled")
    assert status is not None
    assert status["conditions"][0]["observedGeneration"] == 3
    assert plan_route_status(r, services, status, 2_000_000.0) is None


def test_what_the_crd_cannot_check_is_a_false_ready_naming_the_field() -> None:
    fallback = {"fallback": {"service": {"name": "static", "portName": "web"}}}
    r = parse_interceptorroute(route(coldStart=fallback))
    assert _ready(plan_route_status(r, {}, {}, 0.0)) == (
        "False",
        "ServiceNotFound",
        "spec.target: Service web not found; "
        "spec.coldStart.fallback.service: Service static not found",
    )
    services = {"web": _service("web", ("http", 8080)), "static": _service("static")}
    status, reason, message = _ready(plan_route_status(r, services, {}, 0.0))
    assert (status, reason) == ("False", "FallbackPortNotFound")
    assert message.startswith("spec.coldStart.fallback.service.portName: Service static has no")
    bad = copy.deepcopy(route(coldStart={"placeholder": {"response": {"bodyFromConfigMap": {}}}}))
    with pytest.raises(ModelError) as info:
        parse_interceptorroute(bad)
    invalid = InvalidSpec(ObjectMeta("app", "web"), info.value)
    status, reason, message = _ready(plan_route_status(invalid, services, {}, 0.0))
    assert (status, reason) == ("False", "InvalidSpec")
    assert "spec.coldStart.placeholder.response.bodyFromConfigMap" in message


# -- wakeway validate --------------------------------------------------------------------------

SCALED_OBJECT = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": {"name": "web", "namespace": "app"},
    "spec": {
        "scaleTargetRef": {"name": "web"},
        "triggers": [
            {
                "type": "external-push",
                "metadata": {"interceptorRoute": "web", "scalerAddress": "wakeway-scaler:9091"},
            }
        ],
    },
}


def test_validate_checks_interceptor_routes_by_the_same_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump_all([route(rules=[{"hosts": ["a.example.com"]}]), SCALED_OBJECT])
    )
    assert main(["validate", str(good)]) == 0
    out, err = capsys.readouterr()
    assert "ok: 0 HTTPScaledObjects, 1 InterceptorRoutes, 0 HTTPRoutes" in out
    assert "skipped ScaledObject/web: not a wakeway kind" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(route(rules=[{"host": ["a"]}], timeouts={"readines": "1s"})))
    assert main(["validate", str(bad)]) == 1
    _, err = capsys.readouterr()
    assert "(InterceptorRoute web): spec.rules[0].host: unknown field" in err
    assert "spec.timeouts.readines: unknown field; did you mean `readiness`?" in err
    assert "2 problem(s)" in err


def test_the_migration_pages_manifests_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text()
    blocks = page.split("```yaml\n")[1:]
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        (tmp_path / f"{i}.yaml").write_text(block.split("```", 1)[0])
    assert main(["validate", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "ok: 1 HTTPScaledObjects, 1 InterceptorRoutes, 0 HTTPRoutes" in out, (out, err)
    assert "skipped ScaledObject/web" in err
