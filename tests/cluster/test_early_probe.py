"""Cluster tier: early probes. A cold request is answered by the woken pod as soon as its port
accepts, while its EndpointSlice still lists it not ready (the harness's kubelet stand-in is
told to report it ready only 5 s after it listens, as a slow readiness probe would)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.standalone import Standalone, first_routed, make_app, running_standalone
from wakeway.kube import Kube
from wakeway.kube.resources import ENDPOINTSLICES

pytestmark = pytest.mark.cluster

PROXY, ADMIN, SCALER = 17401, 17402, 17403
READY_DELAY = 5.0


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    probes = {"WAKEWAY_INTERCEPTOR_EARLY_PROBE_INTERVAL": "0.005"}
    with running_standalone(cluster, "early", PROXY, ADMIN, SCALER, interceptor_env=probes) as s:
        yield s


async def endpoint_conditions(kube: Kube, ns: str, service: str) -> list[dict[str, object]]:
    slices = await kube.list(ENDPOINTSLICES, ns)
    return [
        dict(e.get("conditions") or {})
        for s in slices.items
        if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == service
        for e in s.get("endpoints") or []
    ]


async def test_a_cold_request_is_answered_before_the_pod_is_listed_ready(
    stack: Standalone, kube: Kube
) -> None:
    ns = await make_app(kube, "early", annotations={"wakeway.test/ready-delay": str(READY_DELAY)})
    answer = await first_routed(stack, f"early.{ns}.test")  # the request that wakes it
    assert answer.status == 200, answer.body[:200]
    assert answer.body.startswith("early-")
    # Answered by the pod while Kubernetes still calls it not ready: found by a probe.
    listed = await endpoint_conditions(kube, ns, "early")
    assert listed
    assert all(c.get("ready") is False for c in listed), listed
    assert answer.seconds < READY_DELAY
    found = [e for e in stack.events("early-probe") if e.get("backend") == f"{ns}/early:80"]
    assert len(found) == 1, found
