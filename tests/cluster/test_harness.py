"""Tests of the cluster harness itself: the control plane, the fake nodes and the pod runner
behave like the real thing where our components will look."""

from __future__ import annotations

import functools
import ipaddress
import uuid
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.cluster.harness import podrunner
from tests.cluster.harness.cluster import POD_CIDR, Cluster
from tests.cluster.helpers import deployment, eventually, manifest, pod, service

pytestmark = pytest.mark.cluster

PORT = 8080


def _namespace() -> Any:
    return manifest(metadata={"name": f"t-{uuid.uuid4().hex[:8]}"})


async def _new_namespace(core: Any) -> str:
    created = await core.create_namespace(_namespace())
    return str(created.metadata.name)


def _is_ready(p: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])


async def test_version_is_the_pinned_release(cluster: Cluster) -> None:
    async with cluster.api() as api:
        version = await client.VersionApi(api).get_code()
    assert version.git_version.startswith("v1.35.")
    assert version.minor == "35"


async def test_deployment_scales_0_1_3_0_with_pods_that_answer(cluster: Cluster) -> None:
    async with cluster.api() as api:
        core = client.CoreV1Api(api)
        apps = client.AppsV1Api(api)
        discovery = client.DiscoveryV1Api(api)
        ns = await _new_namespace(core)
        await apps.create_namespaced_deployment(ns, deployment("web", replicas=0, port=PORT))
        await core.create_namespaced_service(ns, service("web", port=PORT))

        async def ready_pods(n: int) -> list[Any] | None:
            pods = (await core.list_namespaced_pod(ns, label_selector="app=web")).items
            live = [p for p in pods if p.metadata.deletion_timestamp is None]
            if len(pods) == n and all(p.status.phase == "Running" and _is_ready(p) for p in live):
                return live
            return None

        async def slice_endpoints() -> list[Any]:
            slices = await discovery.list_namespaced_endpoint_slice(
                ns, label_selector="kubernetes.io/service-name=web"
            )
            return [e for s in slices.items for e in s.endpoints or []]

        async def ready_slice_ips() -> set[str]:
            endpoints = await slice_endpoints()
            return {a for e in endpoints if e.conditions.ready for a in e.addresses}

        for replicas in (1, 3):
            await apps.patch_namespaced_deployment_scale(
                "web", ns, {"spec": {"replicas": replicas}}
            )
            pods = await eventually(
                functools.partial(ready_pods, replicas), f"{replicas} ready pods"
            )
            ips = {p.status.pod_ip for p in pods}
            assert len(ips) == replicas
            for ip in ips:
                address = ipaddress.ip_address(ip)
                assert address in ipaddress.ip_network(POD_CIDR)
                assert not address.is_loopback

            async def slice_matches(want: set[str] = ips) -> bool:
                return await ready_slice_ips() == want

            await eventually(slice_matches, f"EndpointSlice with ready {sorted(ips)}")
            for p in pods:
                answer = await cluster.http_get_async(p.status.pod_ip, PORT)
                assert answer.status == 200
                assert answer.body == p.metadata.name

        old_ips = ips
        await apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 0}})
        await eventually(lambda: ready_pods(0), "all pods gone")

        async def slices_empty() -> bool:
            return await slice_endpoints() == []

        await eventually(slices_empty, "EndpointSlices with no endpoint left")
        for ip in old_ips:
            with pytest.raises(ConnectionRefusedError):
                await cluster.http_get_async(ip, PORT, deadline=2)


async def test_readiness_follows_the_real_server(cluster: Cluster) -> None:
    async with cluster.api() as api:
        core = client.CoreV1Api(api)
        ns = await _new_namespace(core)
        await core.create_namespaced_pod(
            ns, pod("never", port=PORT, annotations={podrunner.NEVER_READY: "true"})
        )
        await core.create_namespaced_pod(
            ns, pod("slow-start", port=PORT, annotations={podrunner.STARTUP_DELAY: "2"})
        )
        await core.create_namespaced_pod(
            ns, pod("crashy", port=PORT, annotations={podrunner.CRASH_AFTER: "1"})
        )

        async def read(name: str) -> Any:
            return await core.read_namespaced_pod(name, ns)

        async def slow_start_ready() -> Any:
            p = await read("slow-start")
            return p if _is_ready(p) else None

        started = await eventually(slow_start_ready, "slow-start Ready")
        ready_at = next(
            c.last_transition_time for c in started.status.conditions if c.type == "Ready"
        )
        assert (ready_at - started.status.start_time).total_seconds() >= 1

        never = await read("never")
        assert never.status.phase == "Running"
        assert not _is_ready(never)

        async def crashy_ready() -> Any:
            p = await read("crashy")
            return p if _is_ready(p) else None

        crashy = await eventually(crashy_ready, "crashy Ready")
        answer = await cluster.http_get_async(crashy.status.pod_ip, PORT)
        assert answer.body == "crashy"

        async def restarted_and_ready() -> Any:
            p = await read("crashy")
            statuses = p.status.container_statuses or []
            return p if statuses and statuses[0].restart_count >= 1 and _is_ready(p) else None

        await eventually(restarted_and_ready, "crashy restarted and Ready again")


async def test_service_account_client_gets_only_what_its_role_grants(cluster: Cluster) -> None:
    async with cluster.api() as api:
        core = client.CoreV1Api(api)
        rbac = client.RbacAuthorizationV1Api(api)
        ns = await _new_namespace(core)
        await core.create_namespaced_service_account(ns, manifest(metadata={"name": "reader"}))
        await rbac.create_namespaced_role(
            ns,
            manifest(
                metadata={"name": "pod-reader"},
                rules=[{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
            ),
        )
        await rbac.create_namespaced_role_binding(
            ns,
            manifest(
                metadata={"name": "reader"},
                roleRef={
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pod-reader",
                },
                subjects=[{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
            ),
        )
    path = await cluster.service_account_kubeconfig(ns, "reader")
    async with cluster.api(path) as api:
        core = client.CoreV1Api(api)

        async def can_list_pods() -> bool:
            try:
                await core.list_namespaced_pod(ns)
            except ApiException as e:
                if e.status != 403:
                    raise
                return False
            return True

        # The RBAC authorizer reads bindings from a cache: allow it a moment to catch up.
        await eventually(can_list_pods, "the Role's grant to take effect", within=10)
        denied = [
            core.list_namespaced_secret(ns),
            core.list_namespaced_pod("default"),
            core.create_namespaced_pod(ns, pod("nope", port=PORT)),
            core.delete_namespaced_pod("anything", ns),
        ]
        for call in denied:
            with pytest.raises(ApiException) as caught:
                await call
            assert caught.value.status == 403


def _route(name: str, path_type: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "gateway"}],
            "hostnames": ["app.example.test"],
            "rules": [
                {
                    "matches": [{"path": {"type": path_type, "value": "/api"}}],
                    "backendRefs": [{"name": "web", "port": PORT}],
                }
            ],
        },
    }


async def test_gateway_api_crds_accept_a_valid_httproute_and_reject_an_invalid_one(
    cluster: Cluster,
) -> None:
    async with cluster.api() as api:
        core = client.CoreV1Api(api)
        crds = await client.ApiextensionsV1Api(api).list_custom_resource_definition()
        names = {c.metadata.name for c in crds.items}
        for kind in ("gatewayclasses", "gateways", "httproutes", "referencegrants", "grpcroutes"):
            assert f"{kind}.gateway.networking.k8s.io" in names

        ns = await _new_namespace(core)
        routes = client.CustomObjectsApi(api)
        group, version = "gateway.networking.k8s.io", "v1"
        created = await routes.create_namespaced_custom_object(
            group, version, ns, "httproutes", _route("good", "PathPrefix")
        )
        assert created["spec"]["rules"][0]["matches"][0]["path"]["type"] == "PathPrefix"
        with pytest.raises(ApiException) as caught:
            await routes.create_namespaced_custom_object(
                group, version, ns, "httproutes", _route("bad", "Sometimes")
            )
        assert caught.value.status == 422
        assert "Sometimes" in str(caught.value.body)
