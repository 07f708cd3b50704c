"""wakeway.kube against a real API server: informers, typed errors, status, scale, events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import deployment, eventually
from tests.cluster.wakeway_setup import install_crd
from wakeway.kube.client import Kube
from wakeway.kube.errors import Forbidden, Invalid, NotFound
from wakeway.kube.informer import Informer
from wakeway.kube.resources import (
    DEPLOYMENTS,
    EVENTS,
    HTTPROUTES,
    HTTPSCALEDOBJECTS,
    NAMESPACES,
    SERVICES,
    Resource,
)
from wakeway.model.errors import ModelError
from wakeway.model.meta import ObjectMeta, parse_meta

pytestmark = pytest.mark.cluster

ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")


@pytest.fixture
async def ns(kube: Kube) -> AsyncIterator[str]:
    name = f"kube-{uuid.uuid4().hex[:8]}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": name}})
    try:
        yield name
    finally:
        await kube.delete(NAMESPACES, None, name)


def svc(name: str, port: int = 80, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"ports": [{"name": "http", "port": port}], "selector": {"app": name}},
    }


def parse_service(doc: Mapping[str, Any]) -> ObjectMeta:
    meta = parse_meta(doc, "")
    if meta.labels.get("broken") == "yes":
        raise ModelError("metadata.labels.broken", "is set")
    return meta


async def test_informer_lists_then_follows_changes(kube: Kube, ns: str) -> None:
    await kube.create(SERVICES, ns, svc("before"))
    informer = Informer(kube, SERVICES, parse_service, namespace=ns)
    changed: list[str] = []
    informer.add_handler(changed.append)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert set(informer.items()) == {f"{ns}/before"}
        await kube.create(SERVICES, ns, svc("after"))
        await kube.merge_patch(SERVICES, ns, "before", {"metadata": {"labels": {"broken": "yes"}}})

        async def seen() -> bool:
            entry = informer.get(f"{ns}/before")
            return (
                f"{ns}/after" in informer.items() and entry is not None and entry.error is not None
            )

        await eventually(seen, "the watch delivers the new and the changed Service", within=10)
        broken = informer.get(f"{ns}/before")
        assert broken is not None
        assert broken.value is None
        assert broken.error is not None
        assert broken.error.path == "metadata.labels.broken"
        assert [m.name for m in informer.values()] == ["after"]
        await kube.delete(SERVICES, ns, "after")
        await eventually(
            lambda: _async(f"{ns}/after" not in informer.items()), "the deletion", within=10
        )
        assert f"{ns}/after" in changed
        assert informer.relists == 1
    finally:
        await informer.stop()


async def test_informer_resumes_a_watch_the_server_ended(kube: Kube, ns: str) -> None:
    informer = Informer(kube, SERVICES, parse_service, namespace=ns, server_timeout=1)
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        # The server ends each watch after 1 s: the informer resumes from its last version
        # without listing again, and still sees later changes.
        await eventually(
            lambda: _async(informer.resumed >= 2), "the server to end two watches", within=10
        )
        await kube.create(SERVICES, ns, svc("late"))
        await eventually(
            lambda: _async(f"{ns}/late" in informer.items()), "a later change", within=10
        )
        assert informer.relists == 1
    finally:
        await informer.stop()


async def test_typed_errors(kube: Kube, ns: str) -> None:
    with pytest.raises(NotFound):
        await kube.get(SERVICES, ns, "missing")
    with pytest.raises(Invalid) as invalid:
        await kube.create(SERVICES, ns, {"metadata": {"name": "Bad_Name"}, "spec": {}})
    assert "metadata.name" in invalid.value.message
    assert not await kube.has_resource("keda.sh", "v1alpha1", "scaledobjects")
    assert await kube.has_resource("gateway.networking.k8s.io", "v1", "httproutes")
    assert await kube.has_resource("apps", "v1", "deployments")
    assert HTTPROUTES.path("a", "b", "status") == (
        "/apis/gateway.networking.k8s.io/v1/namespaces/a/httproutes/b/status"
    )


async def test_service_account_is_forbidden_what_its_role_does_not_grant(
    cluster: Cluster, kube: Kube, ns: str
) -> None:
    await kube.create(SERVICEACCOUNTS, ns, {"metadata": {"name": "reader"}})
    await kube.create(
        ROLES,
        ns,
        {
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list"]}],
        },
    )
    await kube.create(
        ROLEBINDINGS,
        ns,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        },
    )
    path = await cluster.service_account_kubeconfig(ns, "reader")
    limited = await Kube.connect(str(path))
    try:

        async def can_list() -> bool:
            await limited.list(SERVICES, ns)
            return True

        await eventually(can_list, "the RoleBinding to take effect", within=10)
        with pytest.raises(Forbidden):
            await limited.create(SERVICES, ns, svc("nope"))
        with pytest.raises(Forbidden):
            await limited.get_scale(DEPLOYMENTS, ns, "web")
    finally:
        await limited.close()


async def test_status_is_written_only_when_it_changes(kube: Kube, ns: str) -> None:
    # An HTTPScaledObject: no controller of the harness writes its status, so every write
    # and every skipped write here is the adapter's doing.
    await install_crd(kube)
    await kube.create(
        HTTPSCALEDOBJECTS,
        ns,
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"name": "web", "service": "web", "port": 80}},
        },
    )
    status = {
        "targetWorkload": "apps/v1/Deployment/web",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Testing",
                "message": "written by a test",
                "observedGeneration": 1,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    assert await kube.update_status(HTTPSCALEDOBJECTS, ns, "web", status)
    before = await kube.get(HTTPSCALEDOBJECTS, ns, "web")
    assert before["status"] == status
    assert not await kube.update_status(HTTPSCALEDOBJECTS, ns, "web", status)
    after = await kube.get(HTTPSCALEDOBJECTS, ns, "web")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_scale_subresource_and_events(kube: Kube, ns: str) -> None:
    await kube.create(DEPLOYMENTS, ns, deployment("web", replicas=0, port=8080))
    scale = await kube.get_scale(DEPLOYMENTS, ns, "web")
    assert scale.replicas == 0
    assert "app=web" in scale.selector or scale.selector == ""
    scale = await kube.set_scale(DEPLOYMENTS, ns, "web", 2)
    assert scale.replicas == 2
    dep = await kube.get(DEPLOYMENTS, ns, "web")
    assert dep["spec"]["replicas"] == 2
    await kube.set_scale(DEPLOYMENTS, ns, "web", 0)
    involved = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": ns,
        "name": "web",
        "uid": dep["metadata"]["uid"],
    }
    await kube.create_event(involved, "Woken", "scaled 0 -> 1 on the first request")
    events = (await kube.list(EVENTS, ns)).items
    assert any(e["reason"] == "Woken" and e["involvedObject"]["name"] == "web" for e in events)


async def _async(value: bool) -> bool:
    return value
