"""Strict configuration: unknown fields and variables are errors that suggest the known name,
every problem of a document is reported at once, and `wakeway validate` reads Kubernetes
manifests by the rules of the CRD and the operator."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from wakeway.cli import main
from wakeway.interceptor.gate import GateCore
from wakeway.interceptor.settings import InterceptorSettings
from wakeway.interceptor.settings import settings_from_env as interceptor_env
from wakeway.local.config import ConfigError, load_config
from wakeway.model import ModelError
from wakeway.model.httproute import parse_httproute
from wakeway.model.httpso import parse_httpscaledobject
from wakeway.model.local import parse_local_workload
from wakeway.model.meta import ObjectMeta
from wakeway.model.service import parse_reference_grant
from wakeway.model.settings import SettingsError
from wakeway.operator.plan import InvalidSpec, Observed, Policy, plan
from wakeway.operator.settings import settings_from_env as operator_env
from wakeway.scaler.settings import settings_from_env as scaler_env

pytestmark = pytest.mark.unit

CRD = Path(__file__).resolve().parents[2] / "crds" / "http.keda.sh_httpscaledobjects.yaml"


def httpso(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "api", "namespace": "team"},
        "spec": {"scaleTargetRef": {"name": "api", "service": "api", "port": 8080}, **spec},
    }


def problems(
    doc: dict[str, Any], parse: Callable[[Any], object] = parse_httpscaledobject
) -> list[str]:
    with pytest.raises(ModelError) as caught:
        parse(doc)
    return [str(p) for p in caught.value.problems]


# --- unknown fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"host": ["a.example"]}, "spec.host: unknown field; did you mean `hosts`?"),
        ({"pathPrefix": ["/a"]}, "spec.pathPrefix: unknown field; did you mean `pathPrefixes`?"),
        (
            {"coldStart": {"maxHeldRequest": 5}},
            "spec.coldStart.maxHeldRequest: unknown field; did you mean `maxHeldRequests`?",
        ),
        (
            {"scalingMetric": {"concurrency": {"target": 5}}},
            "spec.scalingMetric.concurrency.target: unknown field; did you mean `targetValue`?",
        ),
        (
            {"routes": [{"name": "web"}, {"name": "web2", "rule": "api"}]},
            "spec.routes[1].rule: unknown field; did you mean `ruleName`?",
        ),
        ({"xyzzy": 1}, "spec.xyzzy: unknown field"),
    ],
)
def test_an_unknown_field_names_its_path_and_the_closest_known_one(
    spec: dict[str, Any], expected: str
) -> None:
    assert problems(httpso(**spec)) == [expected]


def test_an_unknown_top_level_or_metadata_field_is_an_error_too() -> None:
    doc = httpso()
    doc["stauts"] = {}
    doc["metadata"]["lables"] = {"a": "b"}
    assert problems(doc) == [
        "stauts: unknown field; did you mean `status`?",
        "metadata.lables: unknown field; did you mean `labels`?",
    ]


def test_what_the_api_server_adds_is_known() -> None:
    doc = httpso()
    doc["metadata"] |= {
        "uid": "u",
        "managedFields": [{"manager": "kubectl"}],
        "ownerReferences": [],
        "finalizers": ["x"],
        "labels": {"any": "thing"},
    }
    doc["status"] = {"conditions": [], "anything": 1}
    assert parse_httpscaledobject(doc).name == "api"


def test_every_field_the_crd_declares_is_known_to_the_parser() -> None:
    """A document with every field of the CRD's schema has no unknown field (the reverse, that
    the parser reads nothing the CRD lacks, is in test_crd_schema)."""

    def fill(schema: dict[str, Any]) -> Any:
        if schema.get("type") == "object":
            return {k: fill(v) for k, v in schema.get("properties", {}).items()}
        if schema.get("type") == "array":
            return [fill(schema["items"])]
        return schema.get("default", "x")

    (version,) = yaml.safe_load(CRD.read_text())["spec"]["versions"]
    spec = fill(version["schema"]["openAPIV3Schema"]["properties"]["spec"])
    with pytest.raises(ModelError) as caught:
        parse_httpscaledobject(httpso(**spec))  # full of nonsense values, so never valid
    unknown = [str(p) for p in caught.value.problems if "unknown field" in p.message]
    assert unknown == []


# --- every problem at once --------------------------------------------------------------------


def test_every_problem_of_a_document_is_reported_at_once() -> None:
    doc = httpso(
        host=["api.example.com"],
        pathPrefixes=["api", "/ok", "/q?x"],
        replicas={"min": 3, "max": 2},
        coldStart={"maxHeldRequests": 0, "placeholder": {"status": 99}},
        timeouts={"conditionWait": "soon", "connect": "2s"},
    )
    doc["spec"]["scaleTargetRef"]["readines"] = "x"
    found = problems(doc)
    assert sorted(found) == sorted(
        [
            "spec.replicas: min (3) must not be greater than max (2)",
            "spec.pathPrefixes[0]: 'api' must start with '/' (a URL path such as '/api')",
            "spec.pathPrefixes[2]: '/q?x' must be a URL path without query or fragment",
            "spec.timeouts.conditionWait: 'soon' is not a duration such as 30s, 5m or 1h30m",
            "spec.coldStart.maxHeldRequests: must be at least 1, got 0: "
            "the first held request is what wakes the target",
            "spec.coldStart.placeholder.status: must be at least 200, got 99",
            "spec.host: unknown field; did you mean `hosts`?",
            "spec.scaleTargetRef.readines: unknown field",
        ]
    ), found


def test_a_misspelt_field_that_made_its_item_fail_is_named_too() -> None:
    """Reading an item stopped at the missing ``name``; its near miss is still reported."""
    found = problems(httpso(headers=[{"nmae": "x-tenant"}, {"name": "ok"}]))
    assert found == [
        "spec.headers[0].name: is required",
        "spec.headers[0].nmae: unknown field; did you mean `name`?",
    ]


def test_a_reference_grant_is_strict_and_reports_every_item() -> None:
    doc = {
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "g", "namespace": "team"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespce": "w"}],
            "to": [{"group": "", "kinds": "Service"}],
        },
    }
    assert problems(doc, partial(parse_reference_grant, strict=True)) == [
        "spec.from[0].namespace: is required",
        "spec.to[0].kind: is required",
        "spec.from[0].namespce: unknown field; did you mean `namespace`?",
        "spec.to[0].kinds: unknown field; did you mean `kind`?",
    ]


def route(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": "edge", "managedFields": []},
        "spec": spec,
        "status": {"parents": []},
    }


def test_an_httproute_file_is_strict_and_reports_every_rule() -> None:
    doc = route(
        hostname=["a.example"],
        rules=[
            {"matches": [{"path": {"type": "Prefix", "value": "/"}}]},
            {"backendRefs": [{"name": "wakeway-interceptor", "port": 8080, "wieght": 2}]},
            {"matches": [{"method": "FETCH"}]},
        ],
    )
    found = problems(doc, partial(parse_httproute, strict=True))
    assert found[-2:] == [
        "spec.hostname: unknown field; did you mean `hostnames`?",
        "spec.rules[1].backendRefs[0].wieght: unknown field; did you mean `weight`?",
    ]
    assert [p.split(":")[0] for p in found[:-2]] == [
        "spec.rules[0].matches[0].path.type",
        "spec.rules[2].matches[0].method",
    ]


def test_gateway_fields_wakeway_does_not_use_are_accepted_in_files() -> None:
    doc = route(
        rules=[
            {
                "backendRefs": [{"name": "wakeway-interceptor", "port": 8080}],
                "timeouts": {"request": "10s"},
                "retry": {"attempts": 2},
                "sessionPersistence": {"sessionName": "s"},
                "filters": [
                    {
                        "type": "RequestMirror",
                        "requestMirror": {"backendRef": {"name": "m", "port": 80}, "percent": 5},
                    },
                    {
                        "type": "ExtensionRef",
                        "extensionRef": {"group": "x", "kind": "K", "name": "n"},
                    },
                ],
            }
        ]
    )
    assert parse_httproute(doc, strict=True).name == "web"


def test_objects_from_the_api_server_may_carry_fields_of_a_newer_gateway_api() -> None:
    """The Gateway API's CRD is the cluster's: a field we do not know must not drop a route."""
    doc = route(rules=[{"backendRefs": [{"name": "s", "port": 80}], "futureField": {}}])
    assert parse_httproute(doc).name == "web"
    grant = {
        "metadata": {"name": "g", "namespace": "n"},
        "spec": {"from": [{"group": "", "kind": "K", "namespace": "a", "new": 1}], "to": []},
    }
    assert parse_reference_grant(grant).key == "n/g"
    with pytest.raises(ModelError, match=re.escape("spec.from[0].new: unknown field")):
        parse_reference_grant(grant, strict=True)


def test_a_local_workload_reports_every_problem_and_unknown_field() -> None:
    doc = {
        "apiVersion": "local.wakeway.dev/v1alpha1",
        "kind": "LocalWorkload",
        "metadata": {"name": "w"},
        "spec": {
            "command": [],
            "port": 0,
            "readines": {"httpGet": {"path": "/"}},
            "env": {"ANY_NAME": "is data, not a field"},
        },
    }
    assert problems(doc, parse_local_workload) == [
        "spec.command: is required: the program and its arguments, as a list",
        "spec.port: must be at least 1, got 0",
        "spec.readines: unknown field; did you mean `readiness`?",
    ]


def test_the_operator_condition_names_every_problem() -> None:
    doc = httpso(host=["a"], pathPrefixes=["api"])
    with pytest.raises(ModelError) as caught:
        parse_httpscaledobject(doc)
    meta = ObjectMeta("team", "api", uid="u", generation=1)
    policy = Policy(scaler_address="scaler:9091", stabilization=300)
    status = plan(InvalidSpec(meta, caught.value), Observed("keda"), 0.0, policy).status
    assert status is not None
    ready = status.to_json()["conditions"][0]
    assert (ready["type"], ready["reason"]) == ("Ready", "InvalidSpec")
    assert ready["message"] == (
        "spec.pathPrefixes[0]: 'api' must start with '/' (a URL path such as '/api'); "
        "spec.host: unknown field; did you mean `hosts`?"
    )


# --- the CRD and the model agree --------------------------------------------------------------


def _spec_schema() -> Any:
    (version,) = yaml.safe_load(CRD.read_text())["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]


@pytest.mark.parametrize("prefix", ["/", "/api", "/api/v1/", "api", "", "/a b", "/a?b", "/a#b"])
def test_path_prefix_pattern_agrees_with_the_parser(prefix: str) -> None:
    pattern = _spec_schema()["pathPrefixes"]["items"]["pattern"]
    in_crd = re.search(pattern, prefix) is not None
    try:
        parse_httpscaledobject(httpso(pathPrefixes=[prefix]))
        in_parser = True
    except ModelError:
        in_parser = False
    assert in_crd == in_parser, prefix


def test_max_held_requests_minimum_agrees_with_the_parser() -> None:
    node = _spec_schema()["coldStart"]["properties"]["maxHeldRequests"]
    assert node["minimum"] == 1
    parse_httpscaledobject(httpso(coldStart={"maxHeldRequests": 1}))
    with pytest.raises(ModelError, match="at least 1"):
        parse_httpscaledobject(httpso(coldStart={"maxHeldRequests": 0}))


def test_hold_limits_below_one_are_refused_everywhere() -> None:
    with pytest.raises(SettingsError, match="WAKEWAY_INTERCEPTOR_MAX_HELD_PER_TARGET"):
        interceptor_env({"WAKEWAY_INTERCEPTOR_MAX_HELD_PER_TARGET": "0"})
    with pytest.raises(SettingsError, match="max_held_total"):
        InterceptorSettings(max_held_total=0)
    with pytest.raises(ValueError, match="at least 1"):
        GateCore(global_limit=0)


# --- WAKEWAY_* variables ----------------------------------------------------------------------


@pytest.mark.parametrize("read", [interceptor_env, scaler_env, operator_env])
@pytest.mark.parametrize(
    ("variable", "suggests"),
    [
        ("WAKEWAY_KUBECONFG", "; did you mean WAKEWAY_KUBECONFIG?"),
        ("WAKEWAY_ROUTE_IDENTITY_KEYFILE", "; did you mean WAKEWAY_ROUTE_IDENTITY_KEY_FILE?"),
        ("WAKEWAY_XYZZY", ""),
    ],
)
def test_an_unknown_shared_variable_is_an_error_in_every_component(
    read: Any, variable: str, suggests: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        read({variable: "x"})
    assert str(caught.value) == f"{variable}: unknown variable{suggests}"


def test_a_misspelt_prefix_is_caught_by_the_component_it_was_meant_for() -> None:
    with pytest.raises(SettingsError, match="did you mean WAKEWAY_OPERATOR_MODE"):
        operator_env({"WAKEWAY_OPERATR_MODE": "keda"})
    with pytest.raises(SettingsError, match="WAKEWAY_OPERATR_MODE: unknown variable"):
        scaler_env({"WAKEWAY_OPERATR_MODE": "keda"})


def test_shared_and_tool_variables_are_allowed_everywhere() -> None:
    env = {
        "WAKEWAY_KUBECONFIG": "/k",
        "WAKEWAY_INTERCEPTOR_SERVICE": "a/b:80",
        "WAKEWAY_ROUTE_IDENTITY_KEY_FILE": "/dev/null/none",
        "WAKEWAY_CLUSTER_LOGS": "/tmp/x",
        "WAKEWAY_FUZZ_EXAMPLES": "10",
        "WAKEWAY_DEMO_LISTEN": "127.0.0.1:1",
        "WAKEWAY_DEMO_ADMIN": "127.0.0.1:2",
        "WAKEWAY_SCALER_STALE_AFTER": "3",
    }
    interceptor_env(env)
    scaler_env(env)
    operator_env({k: v for k, v in env.items() if "IDENTITY" not in k})


# --- local configuration and `wakeway validate` -----------------------------------------------

LOCAL = """\
apiVersion: local.wakeway.dev/v1alpha1
kind: LocalWorkload
metadata: {name: web}
spec:
  command: [python3, app.py]
  readines: {httpGet: {path: /}}
---
apiVersion: http.keda.sh/v1alpha1
kind: HTTPScaledObject
metadata: {name: web}
spec:
  host: [web.localhost]
  pathPrefixes: [api]
  scaleTargetRef: {apiVersion: local.wakeway.dev/v1alpha1, kind: LocalWorkload, name: web}
  coldStart: {maxHeldRequests: 0}
"""

MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: team}
spec: {replicas: 0}
---
apiVersion: http.keda.sh/v1alpha1
kind: HTTPScaledObject
metadata: {name: api, namespace: team}
spec:
  hosts: [api.example.com]
  scaleTargetRef: {name: api, service: api, port: 8080}
  routes: [{name: web, namespace: edge}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: edge}
spec:
  parentRefs: [{name: gw}]
  rules:
    - backendRefs: [{name: wakeway-interceptor, namespace: wakeway, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: let-team, namespace: edge}
spec:
  from: [{group: http.keda.sh, kind: HTTPScaledObject, namespace: team}]
  to: [{group: gateway.networking.k8s.io, kind: HTTPRoute}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: team}
"""


def test_local_config_reports_every_problem_of_every_document(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(LOCAL)
    with pytest.raises(ConfigError) as caught:
        load_config([path])
    where_w = f"{path} document 1 (LocalWorkload web)"
    where_so = f"{path} document 2 (HTTPScaledObject web)"
    assert caught.value.problems == (
        f"{where_w}: spec.readines: unknown field; did you mean `readiness`?",
        f"{where_so}: spec.pathPrefixes[0]: 'api' must start with '/' (a URL path such as '/api')",
        f"{where_so}: spec.coldStart.maxHeldRequests: must be at least 1, got 0: "
        "the first held request is what wakes the target",
        f"{where_so}: spec.host: unknown field; did you mean `hosts`?",
    )


def test_validate_prints_every_problem_and_its_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(LOCAL)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == "4 problem(s)"
    assert all(line.startswith(f"{path} document ") for line in err[:-1])


def test_validate_reads_kubernetes_manifests_and_notes_what_it_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(MANIFESTS)
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "ok: 1 HTTPScaledObjects, 1 HTTPRoutes, 1 ReferenceGrants, 0 LocalWorkloads\n"
    assert err.splitlines() == [
        f"{path} document 1: skipped Deployment/api: not a wakeway kind",
        f"{path} document 5: skipped Service/api: not a wakeway kind",
    ]


def test_validate_applies_the_crd_and_operator_rules_to_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = MANIFESTS.replace(
        "hosts: [api.example.com]", "host: [api.example.com]\n  pathPrefixes: [v1]"
    )
    bad = bad.replace("kind: HTTPScaledObject, namespace: team", "kind: HTTPScaledObject")
    path = tmp_path / "app.yaml"
    path.write_text(bad)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    so = f"{path} document 2 (HTTPScaledObject api)"
    grant = f"{path} document 4 (ReferenceGrant let-team)"
    assert err == [
        f"{path} document 1: skipped Deployment/api: not a wakeway kind",
        f"{path} document 5: skipped Service/api: not a wakeway kind",
        f"{so}: spec.pathPrefixes[0]: 'v1' must start with '/' (a URL path such as '/api')",
        f"{so}: spec.host: unknown field; did you mean `hosts`?",
        f"{grant}: spec.from[0].namespace: is required",
        "3 problem(s)",
    ]


def test_validate_checks_local_configuration_exactly_as_local_mode_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Files that define a LocalWorkload are local mode's configuration: a Kubernetes target
    and a kind local mode does not read are problems there, not notes."""
    local = LOCAL.replace("  readines: {httpGet: {path: /}}\n", "").replace(
        "  host: [web.localhost]\n  pathPrefixes: [api]\n", ""
    )
    local = local.replace("  coldStart: {maxHeldRequests: 0}\n", "")
    path = tmp_path / "local.yaml"
    path.write_text(local + "---\n" + MANIFESTS)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "document 3 (Deployment api): apiVersion/kind apps/v1/Deployment is not one " in err
    assert "document 4 (HTTPScaledObject api): spec.scaleTargetRef: local mode scales" in err
    assert "skipped" not in err


def test_manifests_may_define_an_object_again_and_the_later_one_counts(tmp_path: Path) -> None:
    """kubectl applies files in order, so a later definition replaces the earlier: noted, as
    local mode's configuration (where it is a problem) is not."""
    (tmp_path / "a.yaml").write_text(MANIFESTS)
    again = MANIFESTS.split("---\n")[1].replace("[api.example.com]", "[v2.example.com]")
    (tmp_path / "b.yaml").write_text(again)
    config = load_config([tmp_path], kubernetes=True)
    assert [so.hosts for so in config.scaled_objects] == [("v2.example.com",)]
    assert config.notes[-1] == (
        f"{tmp_path / 'b.yaml'} document 1 (HTTPScaledObject api): HTTPScaledObject team/api is "
        f"also defined in {tmp_path / 'a.yaml'} document 2 (HTTPScaledObject api); "
        "this one replaces it"
    )


def test_the_shipped_kubernetes_example_validates(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "kubernetes"
    assert main(["validate", str(example)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("ok: 1 HTTPScaledObjects, 1 HTTPRoutes")
