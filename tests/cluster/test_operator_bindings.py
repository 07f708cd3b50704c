"""The operator's controller in this process, against a real API server: route bindings are
built once per change of their inputs (never per reconcile), a resync leaves objects whose
workload was found alone (no /scale read), and a quiet fleet at zero asks for no metrics."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import deployment, eventually, service
from tests.cluster.wakeway_setup import install_crd
from wakeway.kube import Kube
from wakeway.kube.resources import DEPLOYMENTS, HTTPSCALEDOBJECTS, NAMESPACES, SERVICES
from wakeway.model.httpso import HTTPScaledObject
from wakeway.operator.controller import Controller
from wakeway.operator.scaling import Activity
from wakeway.operator.settings import OperatorSettings

pytestmark = pytest.mark.cluster

APPS = 12


class QuietScaler:
    """A scaler link whose stream is up and says inactive; records what was asked of it."""

    def __init__(self) -> None:
        self.metrics: dict[str, bool] = {}

    def activity(self, httpso: HTTPScaledObject, *, metrics: bool = True) -> Activity:
        self.metrics[httpso.key] = metrics
        return Activity(connected=True, active=False, quiet_since=0.0)

    def forget(self, key: str) -> None:
        self.metrics.pop(key, None)


class Counting(Controller):
    """The controller, counting its passes per key."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passes: Counter[str] = Counter()

    async def reconcile(self, key: str) -> float | None:
        self.passes[key] += 1
        return await super().reconcile(key)


def app(ns: str, name: str, hosts: list[str] | None = None) -> Any:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "hosts": hosts or [f"{name}.{ns}.test"],
            "scaleTargetRef": {"name": name, "service": name, "port": 80},
        },
    }


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    k = await Kube.connect(str(cluster.kubeconfig))
    try:
        await install_crd(k)
        yield k
    finally:
        await k.close()


@pytest.fixture
async def ns(kube: Kube) -> AsyncIterator[str]:
    name = f"bind-{uuid.uuid4().hex[:8]}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": name}})
    try:
        yield name
    finally:
        await kube.delete(NAMESPACES, None, name)


def ready(controller: Controller, key: str, generation: int = 1) -> bool:
    cached = controller.httpsos.get(key)
    if cached is None:
        return False
    return any(
        c.type == "Ready" and c.status == "True" and c.observed_generation >= generation
        for c in cached.conditions
    )


async def test_bindings_are_built_per_change_and_a_resync_reads_only_what_is_due(
    kube: Kube, ns: str
) -> None:
    names = [f"app-{i}" for i in range(APPS)]
    for name in names:
        await kube.create(DEPLOYMENTS, ns, deployment(name, replicas=0, port=8080))
        await kube.create(SERVICES, ns, service(name, port=80))
        await kube.create(HTTPSCALEDOBJECTS, ns, app(ns, name))
    # One whose workload does not exist yet: the resync keeps looking for it.
    await kube.create(HTTPSCALEDOBJECTS, ns, app(ns, "missing"))
    settings = OperatorSettings(
        mode="standalone", namespace=ns, health_port=0, resync=0.3, workload_refresh=3600
    )
    scaler = QuietScaler()
    controller = Counting(kube, settings, "standalone", scaler)
    task = asyncio.create_task(controller.run())
    try:
        keys = [f"{ns}/{n}" for n in names]

        async def all_ready() -> bool:  # and every pass their status writes caused is done
            idle = not len(controller.queue) and not controller.queue.processing
            return idle and all(ready(controller, k) for k in keys)

        await eventually(all_ready, "every object Ready", within=60)
        # One build for the whole first sync; each object passed at least once (and once more
        # for its own status write), none of those passes built anything.
        assert controller.bindings.builds == 1
        assert all(controller.passes[k] >= 1 for k in keys)
        # At zero, no metrics are polled.
        assert all(scaler.metrics[k] is False for k in keys)

        # Resyncs: the missing workload is looked for each time, the found ones are left alone.
        settled = {k: controller.passes[k] for k in keys}
        missing = controller.passes[f"{ns}/missing"]

        async def resynced_twice() -> bool:
            return controller.passes[f"{ns}/missing"] >= missing + 2

        await eventually(resynced_twice, "two resyncs", within=30)
        assert {k: controller.passes[k] for k in keys} == settled
        assert controller.bindings.builds == 1

        # A pass of one key reads the bindings it has; it builds nothing.
        await controller.reconcile(keys[0])
        assert controller.bindings.builds == 1

        # A spec change is one new build, and the object's status follows it.
        body = await kube.get(HTTPSCALEDOBJECTS, ns, names[1])
        body["spec"]["hosts"] = [f"renamed.{ns}.test"]
        await kube.replace(HTTPSCALEDOBJECTS, ns, body)

        async def renamed_ready() -> bool:
            return ready(controller, keys[1], generation=2)

        await eventually(renamed_ready, "the changed object Ready again", within=30)
        assert controller.bindings.builds == 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
