"""Cluster tier: an InterceptorRoute (the KEDA HTTP add-on's v1beta1 kind) on a real API server.

The CRD from crds/ accepts the add-on's manifests and refuses what its CEL rules refuse; the
standalone stack (interceptor, scaler, operator under their ServiceAccounts) routes requests by
the route's rules to the pods of its Service, and the operator writes the route's Ready
condition as the add-on does (Reconciled), or False with the reason and the field. Without
KEDA nothing scales a route (its ScaledObject is the user's), so the Deployment runs one replica.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import Answer, deployment, eventually, http_request, service
from tests.cluster.standalone import Standalone, running_standalone
from wakeway.kube import Invalid, Kube
from wakeway.kube.resources import DEPLOYMENTS, INTERCEPTORROUTES, NAMESPACES, SERVICES

pytestmark = pytest.mark.cluster

PROXY, ADMIN, SCALER = 17381, 17382, 17383


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    with running_standalone(cluster, "ir", PROXY, ADMIN, SCALER) as s:
        yield s


def route(name: str, ns: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "target": {"service": name, "port": 80},
        "rules": [
            {"hosts": [f"{name}.{ns}.test"], "paths": [{"value": "/api"}]},
            # Each namespace its own wildcard: routes of other tests claim none of it.
            {"hosts": [f"*.other.{ns}.test"], "headers": [{"name": "x-tenant", "value": name}]},
        ],
        "scalingMetric": {"concurrency": {"targetValue": 10}},
    }
    body.update(spec)
    return {
        "apiVersion": "http.keda.sh/v1beta1",
        "kind": "InterceptorRoute",
        "metadata": {"name": name},
        "spec": body,
    }


async def ready_condition(kube: Kube, ns: str, name: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        obj = await kube.get(INTERCEPTORROUTES, ns, name)
        for c in (obj.get("status") or {}).get("conditions", []):
            if c["type"] == "Ready" and c["status"] == status:
                return dict(c)
        return None

    return await eventually(check, f"{ns}/{name} Ready={status}", within=60)


async def test_the_crd_refuses_what_the_add_ons_rules_refuse(stack: Standalone, kube: Kube) -> None:
    ns = f"ir-{uuid.uuid4().hex[:6]}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
    bad = {
        "target": {"service": "web", "port": 80, "portName": "http"},
        "scalingMetric": {},
        "coldStart": {},
    }
    with pytest.raises(Invalid) as info:
        await kube.create(INTERCEPTORROUTES, ns, route("web", ns, **bad))
    text = str(info.value)
    for expected in (
        "exactly one of 'port' or 'portName' must be set",
        "at least one of 'concurrency' or 'requestRate' must be set",
        "at least one of 'fallback' or 'placeholder' must be set",
    ):
        assert expected in text, text
    # Defaults as in the add-on's CRD: requestRate window and granularity, placeholder status.
    created = await kube.create(
        INTERCEPTORROUTES,
        ns,
        route(
            "web",
            ns,
            scalingMetric={"requestRate": {"targetValue": 5}},
            coldStart={"placeholder": {"response": {"body": "soon"}}},
        ),
    )
    assert created["spec"]["scalingMetric"]["requestRate"] == {
        "targetValue": 5,
        "window": "1m",
        "granularity": "1s",
    }
    assert created["spec"]["coldStart"]["placeholder"]["response"]["statusCode"] == 503


async def test_a_route_is_routed_by_its_rules_and_its_status_is_written(
    stack: Standalone, kube: Kube
) -> None:
    ns = f"ir-{uuid.uuid4().hex[:6]}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
    await kube.create(DEPLOYMENTS, ns, deployment("web", replicas=1, port=8080))
    svc = service("web", port=80)
    svc["spec"]["ports"][0]["targetPort"] = 8080
    await kube.create(SERVICES, ns, svc)
    await kube.create(INTERCEPTORROUTES, ns, route("web", ns))
    # A second route whose Service does not exist, and a third the model refuses.
    await kube.create(INTERCEPTORROUTES, ns, route("gone", ns))
    configmap = {"placeholder": {"response": {"bodyFromConfigMap": {"name": "page"}}}}
    await kube.create(INTERCEPTORROUTES, ns, route("cm", ns, coldStart=configmap))

    ready = await ready_condition(kube, ns, "web", "True")
    assert ready["reason"] == "Reconciled"
    gone = await ready_condition(kube, ns, "gone", "False")
    assert (gone["reason"], gone["message"]) == (
        "ServiceNotFound",
        "spec.target: Service gone not found",
    )
    cm = await ready_condition(kube, ns, "cm", "False")
    assert cm["reason"] == "InvalidSpec"
    assert "spec.coldStart.placeholder.response.bodyFromConfigMap" in cm["message"]

    host = f"web.{ns}.test"

    async def routed() -> Answer | None:  # until the interceptor has the route (404 before)
        answer = await get(stack, host, "/api/v1")
        return answer if answer.status != 404 else None

    answer = await eventually(routed, "the interceptor to route by the InterceptorRoute")
    assert (answer.status, answer.body.split("-")[0]) == (200, "web"), answer
    # The path is the rule's, element-wise: /apix is not /api.
    assert (await get(stack, host, "/apix")).status == 404
    # The second rule: any host under other.<ns>.test with the tenant header.
    assert (await get(stack, f"a.other.{ns}.test", "/", {"x-tenant": "web"})).status == 200
    assert (await get(stack, f"a.other.{ns}.test", "/")).status == 404
    # A route whose Service is missing is answered at once, not held until the deadline.
    missing = await get(stack, f"gone.{ns}.test", "/api")
    assert missing.status == 503, missing
    assert "ServiceNotFound" in missing.body, missing


async def get(
    stack: Standalone, host: str, path: str, headers: dict[str, str] | None = None
) -> Answer:
    return await http_request(stack.cluster, host, PROXY, path=path, headers=headers)
