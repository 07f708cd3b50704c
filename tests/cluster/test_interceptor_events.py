"""Which HTTPScaledObject events make a Kubernetes-mode interceptor rebuild, on a real API server.

The operator writes status (the Active condition, replicas) while traffic comes and goes; every
interceptor replica gets each write as a watch event. Only what the interceptor reads (the spec,
and a Ready condition saying the object cannot be served) may cost a rebuild.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.cluster.helpers import eventually
from tests.cluster.standalone import make_app
from tests.cluster.wakeway_setup import install_crd
from wakeway.interceptor import Interceptor, InterceptorSettings
from wakeway.interceptor.kube_mode import KubeConfigSource
from wakeway.interceptor.settings import KubeModeSettings
from wakeway.kube import Kube
from wakeway.kube.resources import HTTPSCALEDOBJECTS, NAMESPACES

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
