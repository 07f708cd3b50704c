"""Interop tier: migrating from the KEDA HTTP add-on v0.14+, with the real KEDA.

The add-on's way, unchanged: an InterceptorRoute (``http.keda.sh/v1beta1``) and the user's
own ScaledObject whose ``external-push`` trigger names it (``interceptorRoute``) and points at
the scaler. wakeway's operator creates no ScaledObject for it and only writes its Ready
condition; KEDA asks wakeway's scaler about the route, which answers with the route's metrics.
Beside it an HTTPScaledObject (``v1alpha1``) keeps working the way it always did: wakeway's
operator generates its ScaledObject. One held request wakes each Deployment from zero, and
each goes back to zero after its cooldown.

The stack is tests/interop/stack.py's (KEDA's operator and metrics server built from the Go
module proxy); both workloads are woken at once to keep the module short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import eventually
from tests.interop.keda import condition
from tests.interop.stack import KedaStack, Ports, deployment_at_zero, keda_stack
from wakeway.kube import Kube, NotFound
from wakeway.kube.resources import (
    DEPLOYMENTS,
    HTTPSCALEDOBJECTS,
    INTERCEPTORROUTES,
    SCALEDOBJECTS,
)

pytestmark = pytest.mark.interop

PORTS = Ports.block(29800)
COOLDOWN = 5
POLLING = 5  # the user's ScaledObject's pollingInterval: KEDA's re-check for scaling down
ROUTE_HOST = "route.example.com"
LEGACY_HOST = "legacy.example.com"
STARTUP_DELAY = 1


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[KedaStack]:
    with keda_stack(cluster, PORTS, "kedair") as keda:
        yield keda


def interceptor_route() -> dict[str, Any]:
    """As the add-on documents it: target, rules, both metrics, a fallback-free cold start."""
    return {
        "apiVersion": "http.keda.sh/v1beta1",
        "kind": "InterceptorRoute",
        "metadata": {"name": "web"},
        "spec": {
            "target": {"service": "web", "port": 80},
            "rules": [{"hosts": [ROUTE_HOST], "paths": [{"value": "/"}]}],
            "scalingMetric": {
                "concurrency": {"targetValue": 10},
                "requestRate": {"targetValue": 50, "window": "30s"},
            },
            "timeouts": {"readiness": "90s"},
        },
    }


def users_scaled_object(scaler: str) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "web-so"},
        "spec": {
            "scaleTargetRef": {"name": "web"},
            "minReplicaCount": 0,
            "maxReplicaCount": 2,
            "cooldownPeriod": COOLDOWN,
            "pollingInterval": POLLING,
            "triggers": [
                {
                    "type": "external-push",
                    "metadata": {"interceptorRoute": "web", "scalerAddress": scaler},
                }
            ],
        },
    }


def httpso() -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "legacy"},
        "spec": {
            "hosts": [LEGACY_HOST],
            "scaleTargetRef": {"name": "legacy", "service": "legacy", "port": 80},
            "replicas": {"min": 0, "max": 2},
            "scaledownPeriod": COOLDOWN,
            "timeouts": {"conditionWait": "90s"},
        },
    }


async def replicas(kube: Kube, ns: str, name: str) -> int:
    return int((await kube.get(DEPLOYMENTS, ns, name))["spec"].get("replicas") or 0)


async def keda_ready(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        try:
            so = await kube.get(SCALEDOBJECTS, ns, name)
        except NotFound:
            return None
        return so if condition(so, "Ready") == "True" else None

    return await eventually(ready, f"KEDA to mark ScaledObject {name} Ready", within=60)


async def test_an_interceptor_route_with_the_users_scaled_object_wakes_and_sleeps_beside_an_httpso(
    stack: KedaStack, kube: Kube
) -> None:
    ns = stack.namespace
    slow = {"wakeway.test/startup-delay": str(STARTUP_DELAY)}
    for name in ("web", "legacy"):
        await deployment_at_zero(kube, ns, name, slow)
    await kube.create(INTERCEPTORROUTES, ns, interceptor_route())
    await kube.create(SCALEDOBJECTS, ns, users_scaled_object(f"127.0.0.1:{stack.ports.tap}"))
    await kube.create(HTTPSCALEDOBJECTS, ns, httpso())

    # wakeway's operator writes the route's Ready condition, as the add-on's does.
    async def route_ready() -> dict[str, Any] | None:
        conds = (await kube.get(INTERCEPTORROUTES, ns, "web")).get("status", {})
        found = {c["type"]: c for c in conds.get("conditions", [])}
        ready = found.get("Ready")
        return ready if ready is not None and ready["status"] == "True" else None

    ready = await eventually(route_ready, "the InterceptorRoute to be Ready", within=30)
    assert ready["reason"] == "Reconciled"
    users = await keda_ready(kube, ns, "web-so")
    await keda_ready(kube, ns, "legacy")  # generated by wakeway's operator for the HTTPScaledObject
    # KEDA built the HPA from GetMetricSpec: the route's two metrics, under the add-on's names.
    names = users["status"].get("externalMetricNames") or []
    assert sorted(n.split("-", 1)[1] for n in names) == ["http_web_concurrency", "http_web_rate"]
    # wakeway made no ScaledObject for the route: the user's is the only one for "web".
    listed = await kube.list(SCALEDOBJECTS, ns)
    assert sorted(so["metadata"]["name"] for so in listed.items) == ["legacy", "web-so"]

    async def streams_open() -> bool:
        opened = {
            e["request"]["name"]
            for e in stack.tap_events()
            if e["method"] == "StreamIsActive" and e.get("event") == "open"
        }
        return {"web-so", "legacy"} <= opened

    await eventually(streams_open, "KEDA to open StreamIsActive for both", within=30)
    assert await replicas(kube, ns, "web") == 0
    assert await replicas(kube, ns, "legacy") == 0

    # One held request each wakes both Deployments from zero.
    answers = await asyncio.wrap_future(
        stack.cluster.netns.submit(
            lambda: asyncio.run(_requests([ROUTE_HOST, LEGACY_HOST], PORTS.proxy, within=90))
        )
    )
    assert [(status, body.split("-")[0]) for status, body in answers] == [
        (200, "web"),
        (200, "legacy"),
    ], answers
    assert await replicas(kube, ns, "web") == 1  # KEDA scaled it, through the user's object

    # Quiet: KEDA puts both back to zero after the cooldown.
    async def both_at_zero() -> bool:
        return await replicas(kube, ns, "web") == 0 and await replicas(kube, ns, "legacy") == 0

    await eventually(
        both_at_zero, "KEDA to scale both to zero", within=COOLDOWN + 30 + 30, interval=0.5
    )

    # Every RPC KEDA made about the route was answered.
    calls = [
        e for e in stack.tap_events() if e["request"].get("name") == "web-so" and "event" not in e
    ]
    assert {e["method"] for e in calls} >= {"GetMetricSpec", "GetMetrics"}, calls
    failed = [
        (e["method"], e["code"], e.get("details"))
        for e in calls
        if e["code"] != "OK" and e["method"] != "StreamMetricSpec"
    ]
    assert not failed, failed


async def _requests(hosts: list[str], port: int, within: float) -> list[tuple[int, str]]:
    """One GET per host, at once, each on its own connection (run inside the netns)."""

    async def one(host: str) -> tuple[int, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            raw = await reader.read()
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body.decode(errors="replace")

    async with asyncio.timeout(within):
        return list(await asyncio.gather(*(one(h) for h in hosts)))
