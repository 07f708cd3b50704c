"""Which HTTPScaledObject events make a Kubernetes-mode interceptor rebuild, on a real API server.

The operator writes status (the Active condition, replicas) while traffic comes and goes; every
interceptor replica gets each write as a watch event. Only what the interceptor reads (the spec,
and a Ready condition saying the object cannot be served) may cost a rebuild.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest

from tests.cluster.helpers import eventually
from tests.cluster.standalone import make_app
from tests.cluster.wakeway_setup import install_crd
from wakeway.interceptor import Interceptor, InterceptorSettings, kube_mode
from wakeway.interceptor.kube_mode import KubeConfigSource
from wakeway.interceptor.settings import KubeModeSettings
from wakeway.kube import Kube
from wakeway.kube.resources import ENDPOINTSLICES, HTTPSCALEDOBJECTS, NAMESPACES
from wakeway.routing import RoutingTable

pytestmark = pytest.mark.cluster


@pytest.fixture
async def source(kube: Kube) -> AsyncIterator[tuple[KubeConfigSource, str]]:
    await install_crd(kube)
    ns = await make_app(kube, "app")
    loopback = InterceptorSettings(
        listen_host="127.0.0.1", listen_port=0, admin_host="127.0.0.1", admin_port=0
    )
    interceptor = Interceptor(loopback)  # gets no traffic: only its tables are read
    await interceptor.start()
    src = KubeConfigSource(kube, interceptor, KubeModeSettings(debounce=0.0))
    await src.start()
    try:
        yield src, ns
    finally:
        await src.stop()
        await interceptor.drain_and_stop()
        await kube.delete(NAMESPACES, None, ns)


def condition(status: str, reason: str, generation: int) -> dict[str, object]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": f"{reason} for the test",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "observedGeneration": generation,
    }


async def test_status_only_writes_cost_no_rebuild_but_spec_and_unservable_do(
    source: tuple[KubeConfigSource, str], kube: Kube
) -> None:
    src, ns = source
    key = f"{ns}/app"
    await eventually(
        lambda: _true(src.table is not None and key in src.table.targets), "first table"
    )
    generation = src.scaled.get(key).meta.generation  # type: ignore[union-attr]

    async def seen(version: str) -> bool:
        cached = src.scaled.get(key)
        return cached is not None and cached.meta.resource_version != version

    # Ten status writes as the operator makes them while traffic comes and goes.
    rebuilds, skipped = src.rebuilds, src.skipped
    for i in range(10):
        version = src.scaled.get(key).meta.resource_version  # type: ignore[union-attr]
        status = {
            "observedGeneration": generation,
            "replicas": i,
            "conditions": [condition("True", "Ready", generation)],
        }
        assert await kube.update_status(HTTPSCALEDOBJECTS, ns, "app", status)
        await eventually(lambda v=version: seen(v), f"status write {i} in the cache")  # type: ignore[misc]
    assert src.skipped - skipped == 10
    assert src.rebuilds == rebuilds

    # A status saying the workload is missing is read: requests must be answered at once.
    status = {"conditions": [condition("False", "WorkloadNotFound", generation)]}
    assert await kube.update_status(HTTPSCALEDOBJECTS, ns, "app", status)
    await eventually(
        lambda: _true(key in src.unservable and src.rebuilds > rebuilds), "unservable noticed"
    )

    # So is a spec change.
    rebuilds = src.rebuilds
    await kube.merge_patch(HTTPSCALEDOBJECTS, ns, "app", {"spec": {"hosts": ["b.example"]}})
    await eventually(
        lambda: _true(
            src.table is not None
            and src.table.targets[key].hosts == ("b.example",)
            and src.rebuilds > rebuilds
        ),
        "spec change rebuilt",
    )


async def _true(value: bool) -> bool:
    return value


async def test_an_endpoint_change_does_not_wait_for_a_table_build_in_progress(
    source: tuple[KubeConfigSource, str], kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new ready endpoint releases held requests; it must not wait behind a routing-table
    build (seconds with thousands of routes) that a spec change started just before."""
    src, ns = source
    key = f"{ns}/app"
    await eventually(
        lambda: _true(src.table is not None and key in src.table.targets), "first table"
    )
    entered, release = threading.Event(), threading.Event()

    def slow_table(*args: Any) -> RoutingTable:
        entered.set()
        release.wait(60)
        return RoutingTable(*args)

    views: list[Mapping[str, Sequence[tuple[str, int]]]] = []
    set_endpoints = src.interceptor.set_endpoints

    def spy(view: Mapping[str, Sequence[tuple[str, int]]], *rest: Any) -> None:
        views.append(view)
        set_endpoints(view, *rest)

    monkeypatch.setattr(kube_mode, "RoutingTable", slow_table)
    monkeypatch.setattr(src.interceptor, "set_endpoints", spy)
    try:
        await kube.merge_patch(HTTPSCALEDOBJECTS, ns, "app", {"spec": {"hosts": ["c.example"]}})
        await eventually(lambda: _true(entered.is_set()), "a table build in progress")
        rebuilds = src.rebuilds
        slice_ = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "app-1", "labels": {"kubernetes.io/service-name": "app"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.7.7"], "conditions": {"ready": True}}],
        }
        await kube.create(ENDPOINTSLICES, ns, slice_)
        backend = f"{ns}/app:80"
        await eventually(
            lambda: _true(any(("10.244.7.7", 8080) in v.get(backend, ()) for v in views)),
            "the new endpoint in the view",
        )
        assert src.rebuilds == rebuilds  # the table build is still blocked
    finally:
        release.set()
    await eventually(lambda: _true(src.rebuilds > rebuilds), "the table build to finish")
