"""The interceptor in Kubernetes mode on a real API server, forwarding to real pods.

It runs as ``wakeway interceptor`` inside the cluster's network namespace under its own
ServiceAccount (the RBAC of config/base), with a route identity key.
"""

from __future__ import annotations

import asyncio
import http.client
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import Proc, stop
from tests.cluster.helpers import deployment, eventually, service
from tests.cluster.wakeway_setup import (
    IDENTITY,
    install_crd,
    install_interceptor_rbac,
    stamped_route,
    start_interceptor,
)
from tests.metrics_text import value
from wakeway.kube import Kube
from wakeway.kube.resources import DEPLOYMENTS, HTTPROUTES, HTTPSCALEDOBJECTS, NAMESPACES, SERVICES
from wakeway.routing.identity import IDENTITY_HEADER

pytestmark = pytest.mark.cluster

PORT, ADMIN = 18080, 19090


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: dict[str, str]


def request(
    cluster: Cluster, host: str, identity: str | None = None, timeout: float = 30.0
) -> Answer:
    """A GET to the interceptor, sent from inside the cluster's network namespace."""

    def send() -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
        try:
            headers = {"Host": host}
            if identity is not None:
                headers[IDENTITY_HEADER] = identity
            conn.request("GET", "/", headers=headers)
            resp = conn.getresponse()
            return Answer(
                resp.status, resp.read().decode(errors="replace"), dict(resp.getheaders())
            )
        finally:
            conn.close()

    return cluster.netns.call(send)


def admin(cluster: Cluster, path: str) -> Answer:
    def send() -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", ADMIN, timeout=5)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return Answer(
                resp.status, resp.read().decode(errors="replace"), dict(resp.getheaders())
            )
        finally:
            conn.close()

    return cluster.netns.call(send)


@pytest.fixture(scope="module")
def interceptor(cluster: Cluster) -> Iterator[Proc]:
    async def prepare() -> Any:
        kube = await Kube.connect(str(cluster.kubeconfig))
        try:
            await install_crd(kube)
            await install_interceptor_rbac(kube)
        finally:
            await kube.close()
        return await cluster.service_account_kubeconfig(
            "wakeway", "wakeway-interceptor", in_netns=True
        )

    kubeconfig = asyncio.run(prepare())
    proc = start_interceptor(
        cluster, kubeconfig, PORT, ADMIN, WAKEWAY_INTERCEPTOR_CONDITION_WAIT="3"
    )
    try:
        yield proc
    finally:
        stop(proc, 5.0)


async def namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": name}})
    return name


def httpso(name: str, **spec: Any) -> dict[str, Any]:
    body = {"scaleTargetRef": {"name": name, "service": name, "port": 80}, **spec}
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name},
        "spec": body,
    }


async def app(kube: Kube, ns: str, name: str, replicas: int, **spec: Any) -> None:
    await kube.create(DEPLOYMENTS, ns, deployment(name, replicas=replicas, port=8080))
    svc = service(name, port=80)
    svc["spec"]["ports"][0]["targetPort"] = 8080
    await kube.create(SERVICES, ns, svc)
    await kube.create(HTTPSCALEDOBJECTS, ns, httpso(name, **spec))


def ready(cluster: Cluster) -> bool:
    try:
        return admin(cluster, "/readyz").status == 200
    except OSError:
        return False


async def test_warm_workload_is_forwarded_to_its_pod(
    cluster: Cluster, interceptor: Proc, kube: Kube
) -> None:
    ns = await namespace(kube, "warm")
    await app(kube, ns, "web", replicas=1, hosts=["web.example.com"])
    await eventually(lambda: _value(ready(cluster)), "the interceptor to be ready", within=30)

    async def answered() -> Answer | None:
        a = request(cluster, "web.example.com", timeout=5)
        return a if a.status == 200 else None

    answer = await eventually(answered, "the pod to answer through the interceptor", within=60)
    assert answer.body.startswith("web-")  # the pod runner answers with the pod's name
    assert answer.headers.get("X-Wakeway-Cold-Start") == "false"
    assert request(cluster, "other.example.com").status == 404


async def test_cold_request_is_held_until_a_pod_is_ready(
    cluster: Cluster, interceptor: Proc, kube: Kube
) -> None:
    ns = await namespace(kube, "cold")
    await app(
        kube,
        ns,
        "sleepy",
        replicas=0,
        hosts=["sleepy.example.com"],
        timeouts={"conditionWait": "60s"},
    )
    await eventually(lambda: _value(ready(cluster)), "the interceptor to be ready", within=30)

    # Sent as soon as the interceptor routes the new object (until then it answers 404).
    held = cluster.netns.submit(lambda: _wait_routed_then_request(cluster, "sleepy.example.com"))
    await eventually(
        lambda: _value(_held(cluster, f"{ns}/sleepy") > 0), "the request to be held", within=30
    )
    await kube.set_scale(DEPLOYMENTS, ns, "sleepy", 1)

    answer = await asyncio.wrap_future(held)
    assert answer.status == 200
    assert answer.body.startswith("sleepy-")
    assert answer.headers.get("X-Wakeway-Cold-Start") == "true"


async def test_forged_host_never_crosses_tenants(
    cluster: Cluster, interceptor: Proc, kube: Kube
) -> None:
    a = await namespace(kube, "tenant-a")
    b = await namespace(kube, "tenant-b")
    await app(kube, a, "shop", replicas=1, routes=[{"name": "shop"}])
    await app(kube, b, "bank", replicas=1, routes=[{"name": "bank"}])
    await kube.create(HTTPROUTES, a, stamped_route(a, "shop", "shop.example.com"))
    await kube.create(HTTPROUTES, b, stamped_route(b, "bank", "bank.example.com"))
    a_id = IDENTITY.stamp(f"{a}/shop")
    b_id = IDENTITY.stamp(f"{b}/bank")

    async def tenant_b_served() -> Answer | None:
        answer = request(cluster, "bank.example.com", b_id, timeout=5)
        return answer if answer.status == 200 else None

    answer = await eventually(tenant_b_served, "tenant B to be served through its route", within=60)
    assert answer.body.startswith("bank-")
    # Through tenant A's route (A's identity, stamped by the Gateway) with B's Host: nothing.
    assert request(cluster, "bank.example.com", a_id).status == 404
    # A forged identity for B's route, without the key: nothing.
    forged = f"{b}/bank;" + "0" * 32
    assert request(cluster, "bank.example.com", forged).status == 404
    assert request(cluster, "bank.example.com").status == 404  # no identity: host entries only
    assert request(cluster, "shop.example.com", a_id).body.startswith("shop-")


def _held(cluster: Cluster, target: str) -> int:
    namespace, _, name = target.partition("/")
    text = admin(cluster, "/metrics").body
    return int(value(text, "wakeway_held_requests", namespace=namespace, name=name) or 0)


def _wait_routed_then_request(cluster: Cluster, host: str) -> Answer:
    deadline = time.monotonic() + 30
    while True:
        # A 404 means the interceptor has not seen the object yet; anything else is the answer.
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=90)
        try:
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            answer = Answer(
                resp.status, resp.read().decode(errors="replace"), dict(resp.getheaders())
            )
        finally:
            conn.close()
        if answer.status != 404 or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


async def _value(v: bool) -> bool:
    return v
