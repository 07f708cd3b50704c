"""The HTTPScaledObject CRD on a real API server: add-on manifests accepted and defaulted the way
the parser reads them, our additions accepted, invalid objects rejected with the field named,
and the status subresource and printer columns working.

The CRD is applied (idempotently) and left installed: it is cluster-wide and other cluster tests
use it. Every object lives in a namespace created for the test and deleted after it."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import eventually
from tests.unit.test_crd_schema import apply_defaults, version_schema
from wakeway.model.httpso import parse_httpscaledobject

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "http.keda.sh_httpscaledobjects.yaml"
GROUP, VERSION, PLURAL = "http.keda.sh", "v1alpha1", "httpscaledobjects"
MERGE = "application/merge-patch+json"


async def install_crd(api: Any) -> None:
    """Creates or replaces the CRD from crds/ and waits until it is Established."""
    ext = client.ApiextensionsV1Api(api)
    doc = yaml.safe_load(CRD_FILE.read_text())
    name = doc["metadata"]["name"]
    try:
        await ext.create_custom_resource_definition(doc)
    except ApiException as e:
        if e.status != 409:
            raise
        current = await ext.read_custom_resource_definition(name)
        doc["metadata"]["resourceVersion"] = current.metadata.resource_version
        await ext.replace_custom_resource_definition(name, doc)

    async def established() -> bool:
        crd = await ext.read_custom_resource_definition(name)
        conditions = {c.type: c.status for c in crd.status.conditions or []}
        return conditions.get("Established") == "True"

    await eventually(established, "the HTTPScaledObject CRD to be established")


@pytest.fixture
async def ns(cluster: Cluster) -> AsyncIterator[str]:
    """A fresh namespace with the CRD installed; deleted afterwards."""
    name = f"crd-{uuid.uuid4().hex[:8]}"
    async with cluster.api() as api:
        await install_crd(api)
        core: Any = client.CoreV1Api(api)
        await core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        async with cluster.api() as api:
            await client.CoreV1Api(api).delete_namespace(name)


def httpso(name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name, **metadata},
        "spec": spec,
    }


async def create(api: Any, ns: str, doc: dict[str, Any]) -> dict[str, Any]:
    objects = client.CustomObjectsApi(api)
    created: dict[str, Any] = await objects.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, copy.deepcopy(doc)
    )
    return created


async def rejection(api: Any, ns: str, doc: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Creates `doc` expecting a 422; returns the message and the causes the server gave."""
    with pytest.raises(ApiException) as caught:
        await create(api, ns, doc)
    assert caught.value.status == 422, caught.value.body
    status = json.loads(caught.value.body or b"{}")
    return status["message"], status.get("details", {}).get("causes", [])


# Shaped like the add-on's documented examples: every one must be accepted unchanged.
ADDON_MANIFESTS = {
    "reference": {
        "hosts": ["myhost.com", "*.example.com"],
        "pathPrefixes": ["/test"],
        "headers": [{"name": "X-Custom-Header", "value": "CustomValue"}],
        "scaleTargetRef": {
            "name": "xkcd",
            "kind": "Deployment",
            "apiVersion": "apps/v1",
            "service": "xkcd",
            "port": 8080,
        },
        "replicas": {"min": 5, "max": 10},
        "scaledownPeriod": 300,
        "scalingMetric": {"requestRate": {"granularity": "1s", "targetValue": 100, "window": "1m"}},
    },
    "concurrency": {
        "hosts": ["app-1"],
        "scaleTargetRef": {"name": "app-1", "service": "app-1", "port": 8080},
        "replicas": {"min": 0, "max": 10},
        "scalingMetric": {"concurrency": {"targetValue": 1}},
        "scaledownPeriod": 1,
    },
    "deprecated-target-pending-requests": {
        "hosts": ["legacy.example.com"],
        "scaleTargetRef": {"service": "legacy", "portName": "http"},
        "targetPendingRequests": 50,
        "initialCooldownPeriod": 60,
        "coldStartTimeoutFailoverRef": {"service": "sorry", "port": 80},
        "timeouts": {"conditionWait": "20s", "responseHeader": "1m30s"},
    },
    "defaults-only": {
        "scaleTargetRef": {"service": "web", "port": 80},
        "scalingMetric": {"requestRate": {}},
    },
}

OUR_ADDITIONS = {
    "routes": [{"name": "web"}, {"name": "shared", "namespace": "edge", "ruleName": "api"}],
    "coldStart": {
        "maxHeldRequests": 200,
        "responseHeader": False,
        "placeholder": {"status": 200, "body": "<p>waking</p>", "contentType": "text/html"},
    },
    "timeouts": {"connect": "2s", "request": "5m", "conditionWait": "1m"},
    "scaleTargetRef": {"name": "db", "kind": "StatefulSet", "service": "db", "port": 5432},
}


@pytest.mark.parametrize("name", sorted(ADDON_MANIFESTS))
async def test_addon_manifest_is_accepted_and_defaulted_as_the_parser_reads_it(
    cluster: Cluster, ns: str, name: str
) -> None:
    doc = httpso(name, ADDON_MANIFESTS[name])
    async with cluster.api() as api:
        stored = await create(api, ns, doc)
    # Nothing the user wrote was pruned or changed; the defaults added are the schema's own
    # (as the unit tier's model of defaulting predicts).
    assert stored["spec"] == apply_defaults(doc["spec"], version_schema()["properties"]["spec"])
    # What the API server stored means what the user wrote.
    assert parse_httpscaledobject(stored) == parse_httpscaledobject(
        {**doc, "metadata": stored["metadata"]}
    )


async def test_server_defaults_are_filled_in(cluster: Cluster, ns: str) -> None:
    doc = httpso("bare", {"scaleTargetRef": {"service": "web", "port": 80}})
    async with cluster.api() as api:
        spec = (await create(api, ns, doc))["spec"]
    assert spec["scaleTargetRef"] == {
        "service": "web",
        "port": 80,
        "kind": "Deployment",
        "apiVersion": "apps/v1",
    }
    assert spec["replicas"] == {"min": 0, "max": 100}
    assert spec["scaledownPeriod"] == 300
    assert spec["initialCooldownPeriod"] == 0
    assert spec["coldStart"] == {"responseHeader": True}
    assert "scalingMetric" not in spec  # absent means concurrency at targetPendingRequests or 100
    assert "timeouts" not in spec  # absent means the interceptor's global settings


async def test_our_additions_are_accepted_with_their_defaults(cluster: Cluster, ns: str) -> None:
    doc = httpso("ours", OUR_ADDITIONS)
    async with cluster.api() as api:
        stored = await create(api, ns, doc)
    spec = stored["spec"]
    assert spec["routes"] == OUR_ADDITIONS["routes"]
    assert spec["coldStart"]["placeholder"] == {
        "enabled": True,
        "status": 200,
        "body": "<p>waking</p>",
        "contentType": "text/html",
        "refreshSeconds": 2,
    }
    assert spec["timeouts"] == OUR_ADDITIONS["timeouts"]
    parsed = parse_httpscaledobject(stored)
    assert parsed.scale_target.kind == "StatefulSet"
    assert parsed.scale_target.api_version == "apps/v1"
    assert [r.route_key for r in parsed.routes] == [f"{ns}/web", "edge/shared"]
    assert parsed.cold_start.max_held_requests == 200
    assert parsed.cold_start.placeholder.enabled
    assert parsed.timeouts.connect == 2.0


def _with(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"scaleTargetRef": {"service": "web", "port": 80}}
    spec.update(changes)
    return spec


# (spec, the field the rejection must name, a word of the message)
INVALID: dict[str, tuple[dict[str, Any], str, str]] = {
    "port-and-portName": (
        _with(scaleTargetRef={"service": "web", "port": 80, "portName": "http"}),
        "spec.scaleTargetRef.portName",
        "not both",
    ),
    "neither-port-nor-portName": (
        _with(scaleTargetRef={"service": "web"}),
        "spec.scaleTargetRef.port",
        "required",
    ),
    "no-service": (
        _with(scaleTargetRef={"name": "web", "port": 80}),
        "spec.scaleTargetRef.service",
        "Required",
    ),
    "failover-port-and-portName": (
        _with(coldStartTimeoutFailoverRef={"service": "s", "port": 80, "portName": "http"}),
        "spec.coldStartTimeoutFailoverRef.portName",
        "not both",
    ),
    "failover-no-port": (
        _with(coldStartTimeoutFailoverRef={"service": "s"}),
        "spec.coldStartTimeoutFailoverRef.port",
        "required",
    ),
    "min-greater-than-max": (
        _with(replicas={"min": 5, "max": 2}),
        "spec.replicas.min",
        "greater than max",
    ),
    "min-greater-than-default-max": (
        _with(replicas={"min": 101}),
        "spec.replicas.min",
        "greater than max",
    ),
    "negative-min": (_with(replicas={"min": -1}), "spec.replicas.min", "greater than or equal"),
    "both-metrics": (
        _with(scalingMetric={"concurrency": {}, "requestRate": {}}),
        "spec.scalingMetric.requestRate",
        "exactly one",
    ),
    "no-metric": (_with(scalingMetric={}), "spec.scalingMetric.concurrency", "exactly one"),
    "zero-target": (
        _with(scalingMetric={"concurrency": {"targetValue": 0}}),
        "spec.scalingMetric.concurrency.targetValue",
        "greater than 0",
    ),
    "bad-window": (
        _with(scalingMetric={"requestRate": {"window": "1 minute"}}),
        "spec.scalingMetric.requestRate.window",
        "duration",
    ),
    "window-shorter-than-granularity": (
        _with(scalingMetric={"requestRate": {"window": "1s", "granularity": "5s"}}),
        "spec.scalingMetric.requestRate.window",
        "shorter",
    ),
    "zero-granularity": (
        _with(scalingMetric={"requestRate": {"granularity": "0s"}}),
        "spec.scalingMetric.requestRate.granularity",
        "greater than zero",
    ),
    "bad-condition-wait": (
        _with(timeouts={"conditionWait": "5"}),
        "spec.timeouts.conditionWait",
        "duration",
    ),
    "bad-request-timeout": (
        _with(timeouts={"request": "1d"}),
        "spec.timeouts.request",
        "duration",
    ),
    "bad-host": (_with(hosts=["a b.example.com"]), "spec.hosts[0]", "should match"),
    "path-with-query": (_with(pathPrefixes=["/a?b"]), "spec.pathPrefixes[0]", "should match"),
    "relative-path": (_with(pathPrefixes=["api"]), "spec.pathPrefixes[0]", "should match"),
    "hold-nothing": (
        _with(coldStart={"maxHeldRequests": 0}),
        "spec.coldStart.maxHeldRequests",
        "greater than or equal to 1",
    ),
    "duplicate-header": (
        _with(headers=[{"name": "x-a"}, {"name": "x-a", "value": "1"}]),
        "spec.headers[1]",
        "Duplicate",
    ),
    "port-out-of-range": (
        _with(scaleTargetRef={"service": "web", "port": 70000}),
        "spec.scaleTargetRef.port",
        "less than or equal",
    ),
    "local-workload": (
        _with(
            scaleTargetRef={
                "service": "web",
                "port": 80,
                "kind": "LocalWorkload",
                "apiVersion": "local.wakeway.dev/v1alpha1",
            }
        ),
        "spec.scaleTargetRef.apiVersion",
        "local mode",
    ),
    "placeholder-status": (
        _with(coldStart={"placeholder": {"status": 99}}),
        "spec.coldStart.placeholder.status",
        "greater than or equal",
    ),
    "route-without-name": (
        _with(routes=[{"namespace": "edge"}]),
        "spec.routes[0].name",
        "Required",
    ),
    "no-scale-target": ({}, "spec.scaleTargetRef", "Required"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_manifest_is_rejected_naming_the_field(
    cluster: Cluster, ns: str, case: str
) -> None:
    spec, field, words = INVALID[case]
    async with cluster.api() as api:
        message, causes = await rejection(api, ns, httpso("bad", spec))
    fields = [c.get("field") for c in causes]
    assert field in fields, f"{case}: {message}"
    assert words.lower() in message.lower(), f"{case}: {message}"


async def test_status_subresource_accepts_conditions_and_keeps_them_apart_from_spec(
    cluster: Cluster, ns: str
) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, Any] = {
        "observedGeneration": 1,
        "targetWorkload": "apps/v1/Deployment/web",
        "targetService": "web:80",
        "mode": "standalone",
        "replicas": 0,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Reconciled",
                "message": "",
                "lastTransitionTime": now,
                "observedGeneration": 1,
            },
            {
                "type": "Bound",
                "status": "False",
                "reason": "RouteNotFound",
                "message": "HTTPRoute x/web does not exist",
                "lastTransitionTime": now,
                "observedGeneration": 1,
            },
        ],
        "routes": [
            {
                "namespace": "x",
                "name": "web",
                "bound": False,
                "identity": "x/web;0123456789abcdef0123456789abcdef",
                "reason": "RouteNotFound",
                "message": "HTTPRoute x/web does not exist",
            }
        ],
        "conflicts": [{"namespace": "y", "name": "other", "message": "same host"}],
    }
    async with cluster.api() as api:
        objects: Any = client.CustomObjectsApi(api)
        created = await create(api, ns, {**httpso("web", _with()), "status": {"mode": "keda"}})
        assert "status" not in created  # status is not written through the main resource
        patched = await objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, "web", {"status": status}, _content_type=MERGE
        )
        assert patched["status"] == status
        assert patched["metadata"]["generation"] == created["metadata"]["generation"]

        bad: Any = copy.deepcopy(status)
        bad["conditions"][0]["status"] = "Maybe"
        with pytest.raises(ApiException) as caught:
            await objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, ns, PLURAL, "web", {"status": bad}, _content_type=MERGE
            )
        assert caught.value.status == 422
        assert "status.conditions[0].status" in str(caught.value.body)

        table = await _table(api, ns, "web")
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == [
        "Name",
        "TargetWorkload",
        "TargetService",
        "Min",
        "Max",
        "Ready",
        "Active",
        "Bound",
        "Age",
    ]
    (row,) = table["rows"]
    assert row["cells"][1:6] == ["apps/v1/Deployment/web", "web:80", 0, 100, "True"]
    assert row["cells"][7] == "False"  # Bound; Active (6) is not written here


async def test_short_name_is_served(cluster: Cluster, ns: str) -> None:
    async with cluster.api() as api:
        resources = await client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION)
    (httpso_resource,) = [r for r in resources.resources if r.name == PLURAL]
    assert httpso_resource.short_names == ["httpso"]
    assert httpso_resource.namespaced


async def _table(api: Any, ns: str, name: str) -> Any:
    """The object as `kubectl get` shows it (a meta.k8s.io Table with the printer columns)."""
    response = await api.call_api(
        f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}/{name}",
        "GET",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    return json.loads(await response.read())
