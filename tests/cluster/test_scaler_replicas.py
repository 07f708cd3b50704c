"""The scaler finds interceptor replicas through the admin Service's EndpointSlices."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import deployment, service
from wakeway.kube import Kube
from wakeway.kube.resources import DEPLOYMENTS, NAMESPACES, SERVICES
from wakeway.scaler.kube_replicas import KubeReplicas

pytestmark = pytest.mark.cluster


async def test_replicas_follow_ready_endpoints(cluster: Cluster, kube: Kube) -> None:
    ns = f"replicas-{uuid.uuid4().hex[:6]}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
    await kube.create(DEPLOYMENTS, ns, deployment("interceptor", replicas=1, port=9090))
    admin = service("interceptor-admin", port=9090)
    admin["spec"]["selector"] = {"app": "interceptor"}
    admin["spec"]["clusterIP"] = "None"
    admin["spec"]["ports"][0]["name"] = "admin"
    await kube.create(SERVICES, ns, admin)

    source = KubeReplicas(str(cluster.kubeconfig), ns, "interceptor-admin", "admin")
    seen: list[frozenset[str]] = []
    stream = source.watch()

    async def until(count: int) -> None:
        async for addresses in stream:
            seen.append(addresses)
            if len(addresses) == count:
                return

    try:
        async with asyncio.timeout(60):
            await until(1)
            await kube.set_scale(DEPLOYMENTS, ns, "interceptor", 2)
            await until(2)
            await kube.set_scale(DEPLOYMENTS, ns, "interceptor", 0)
            await until(0)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    two = next(s for s in seen if len(s) == 2)
    assert all(a.startswith("10.244.0.") and a.endswith(":9090") for a in two)
    assert seen[-1] == frozenset()
    await kube.delete(NAMESPACES, None, ns)
