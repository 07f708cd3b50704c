"""The operator as a process under its own ServiceAccount, against a real API server: status
conditions for invalid and valid HTTPScaledObjects, and the KEDA ScaledObject it owns."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import deployment, eventually, service
from tests.cluster.wakeway_setup import install_rbac
from wakeway.kube import AlreadyExists, Kube, NotFound
from wakeway.kube.resources import (
    CRDS,
    DEPLOYMENTS,
    HTTPSCALEDOBJECTS,
    NAMESPACES,
    SCALEDOBJECTS,
    SERVICES,
    Resource,
)

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
HTTPSO_CRD = ROOT / "crds" / "http.keda.sh_httpscaledobjects.yaml"
KEDA_VERSION = "v2.20.0"


async def _create(kube: Kube, resource: Resource, namespace: str | None, body: Any) -> None:
    with contextlib.suppress(AlreadyExists):
        await kube.create(resource, namespace, body)


async def _crds_established(kube: Kube, *names: str) -> bool:
    for name in names:
        crd = await kube.get(CRDS, None, name)
        conditions = {
            c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []
        }
        if conditions.get("Established") != "True":
            return False
    return True


def _keda_crd() -> Any:
    try:
        out = subprocess.run(
            ["go", "mod", "download", "-json", f"github.com/kedacore/keda/v2@{KEDA_VERSION}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"KEDA's CRDs are not available from the Go module cache: {exc}")
    path = Path(json.loads(out)["Dir"]) / "config/crd/bases/keda.sh_scaledobjects.yaml"
    return yaml.safe_load(path.read_text())


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    k = await Kube.connect(str(cluster.kubeconfig))
    try:
        await _create(k, CRDS, None, yaml.safe_load(HTTPSO_CRD.read_text()))
        await eventually(
            lambda: _crds_established(k, "httpscaledobjects.http.keda.sh"), "the CRD", within=30
        )
        yield k
    finally:
        await k.close()


@pytest.fixture
async def ns(kube: Kube) -> AsyncIterator[str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    await kube.create(NAMESPACES, None, {"metadata": {"name": name}})
    try:
        yield name
    finally:
        await kube.delete(NAMESPACES, None, name)


@pytest.fixture
async def operator_kubeconfig(cluster: Cluster, kube: Kube) -> Path:
    """The operator's ServiceAccount with exactly the RBAC config/base gives it."""
    await install_rbac(kube, "operator")
    return await cluster.service_account_kubeconfig("wakeway", "wakeway-operator")


@contextlib.contextmanager
def operator_process(
    kubeconfig: Path, namespace: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    environ = {
        **os.environ,
        "WAKEWAY_KUBECONFIG": str(kubeconfig),
        "WAKEWAY_OPERATOR_NAMESPACE": namespace,
        "WAKEWAY_OPERATOR_HEALTH_PORT": "0",
        "WAKEWAY_OPERATOR_RESYNC": "2",
        "WAKEWAY_INTERCEPTOR_SERVICE": f"{namespace}/interceptor:8080",
        "PYTHONPATH": str(ROOT / "src"),
        **env,
    }
    argv = [sys.executable, "-c", "from wakeway.cli import main; raise SystemExit(main())"]
    proc = subprocess.Popen([*argv, "--log-level", "DEBUG", "operator"], env=environ)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def operator_metrics(port: int) -> dict[str, float] | None:
    """The operator's counters from its /metrics; None while it does not answer yet."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            text = await response.text()
    except aiohttp.ClientError:
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("wakeway_operator_") and " " in line:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


async def _resynced_since(port: int, start: dict[str, float], passes: int) -> bool:
    now = await operator_metrics(port)
    key = "wakeway_operator_resyncs_total"
    return now is not None and now[key] >= start[key] + passes


def httpso(name: str, *, service_port: dict[str, Any], **spec: Any) -> Any:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name},
        "spec": {
            "hosts": [f"{name}.example.com"],
            "scaleTargetRef": {"name": name, "service": name, **service_port},
            "replicas": {"min": 0, "max": 5},
            "scaledownPeriod": 30,
            **spec,
        },
    }


async def condition(kube: Kube, ns: str, name: str, type_: str) -> dict[str, Any] | None:
    obj = await kube.get(HTTPSCALEDOBJECTS, ns, name)
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_ and c.get("observedGeneration") == obj["metadata"]["generation"]:
            return dict(c)
    return None


async def reason_is(kube: Kube, ns: str, name: str, status: str, reason: str) -> bool:
    ready = await condition(kube, ns, name, "Ready")
    return ready is not None and (ready["status"], ready["reason"]) == (status, reason)


async def test_semantic_problems_are_reported_then_cleared(
    kube: Kube, ns: str, operator_kubeconfig: Path
) -> None:
    with operator_process(
        operator_kubeconfig,
        ns,
        WAKEWAY_OPERATOR_MODE="standalone",
        WAKEWAY_OPERATOR_SCALER_ADDRESS="127.0.0.1:1",
    ):
        # Accepted by the API server (the schema is fine), but nothing it names exists.
        await kube.create(HTTPSCALEDOBJECTS, ns, httpso("web", service_port={"portName": "web"}))
        await eventually(
            lambda: reason_is(kube, ns, "web", "False", "WorkloadNotFound"),
            "Ready=False WorkloadNotFound",
        )
        # The Deployment appears (found by the resync), the Service has no port named "web".
        await kube.create(DEPLOYMENTS, ns, deployment("web", replicas=0, port=8080))
        await kube.create(SERVICES, ns, service("web", port=8080))
        await eventually(
            lambda: reason_is(kube, ns, "web", "False", "PortNotFound"), "Ready=False PortNotFound"
        )
        ready = await condition(kube, ns, "web", "Ready")
        assert ready is not None
        assert "no port named 'web'" in ready["message"]
        # Fixed: Ready, status filled in.
        await kube.merge_patch(
            HTTPSCALEDOBJECTS,
            ns,
            "web",
            {"spec": {"scaleTargetRef": {"portName": "http"}}},
        )
        await eventually(lambda: reason_is(kube, ns, "web", "True", "Ready"), "Ready=True")
        status = (await kube.get(HTTPSCALEDOBJECTS, ns, "web"))["status"]
        assert status["targetWorkload"] == "apps/v1/Deployment/web"
        assert status["targetService"] == "web:http"
        assert status["mode"] == "standalone"
        assert status["replicas"] == 0
        active = {c["type"]: c for c in status["conditions"]}["Active"]
        assert (active["status"], active["reason"]) == ("Unknown", "ScalerUnavailable")
        bound = {c["type"]: c for c in status["conditions"]}["Bound"]
        assert (bound["status"], bound["reason"]) == ("True", "NoRoutes")
        # A bound route that does not exist is reported in Bound, not in Ready.
        await kube.merge_patch(
            HTTPSCALEDOBJECTS, ns, "web", {"spec": {"routes": [{"name": "shop"}]}}
        )

        async def route_missing() -> bool:
            bound = await condition(kube, ns, "web", "Bound")
            return bound is not None and bound["reason"] == "RouteNotFound"

        await eventually(route_missing, "Bound=False RouteNotFound")
        # An ExternalName Service is never accepted as a backend.
        await kube.create(
            SERVICES,
            ns,
            {
                "metadata": {"name": "away"},
                "spec": {"type": "ExternalName", "externalName": "example.com"},
            },
        )
        await kube.merge_patch(
            HTTPSCALEDOBJECTS,
            ns,
            "web",
            {"spec": {"scaleTargetRef": {"service": "away", "portName": None, "port": 80}}},
        )
        await eventually(
            lambda: reason_is(kube, ns, "web", "False", "ExternalNameService"),
            "Ready=False ExternalNameService",
        )


@pytest.fixture
async def keda_crds(kube: Kube) -> AsyncIterator[None]:
    """KEDA's ScaledObject CRD, for this test only (other tests expect a cluster without KEDA)."""
    crd = _keda_crd()
    await _create(kube, CRDS, None, crd)
    try:
        await eventually(
            lambda: _crds_established(kube, crd["metadata"]["name"]), "KEDA's CRD", within=30
        )
        yield
    finally:
        await kube.delete(CRDS, None, crd["metadata"]["name"])


async def scaled_object(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return await kube.get(SCALEDOBJECTS, ns, name)
    except NotFound:
        return None


@pytest.mark.usefixtures("keda_crds")
async def test_keda_mode_owns_one_scaled_object(
    kube: Kube, ns: str, operator_kubeconfig: Path
) -> None:
    await kube.create(DEPLOYMENTS, ns, deployment("api", replicas=0, port=8080))
    await kube.create(SERVICES, ns, service("api", port=8080))
    # auto: KEDA's CRD is served, so KEDA mode.
    health_port = _free_port()
    with operator_process(
        operator_kubeconfig,
        ns,
        WAKEWAY_OPERATOR_SCALER_ADDRESS="wakeway-scaler.wakeway:9091",
        WAKEWAY_OPERATOR_HEALTH_PORT=str(health_port),
    ):
        await eventually(lambda: operator_metrics(health_port), "the operator's /metrics")
        created = await kube.create(
            HTTPSCALEDOBJECTS, ns, httpso("api", service_port={"port": 8080})
        )
        so = await eventually(lambda: scaled_object(kube, ns, "api"), "the ScaledObject")
        assert so["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "http.keda.sh/v1alpha1",
                "kind": "HTTPScaledObject",
                "name": "api",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        spec = so["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "api",
        }
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 5)
        assert spec["cooldownPeriod"] == 30
        assert spec["initialCooldownPeriod"] == 0
        assert spec["triggers"] == [
            {
                "type": "external-push",
                "name": "http",
                "metadata": {
                    "scalerAddress": "wakeway-scaler.wakeway:9091",
                    "httpScaledObject": "api",
                    "namespace": ns,
                    "metric": "concurrency",
                    "targetValue": "100",
                },
            }
        ]
        await eventually(lambda: reason_is(kube, ns, "api", "True", "Ready"), "Ready=True")
        status = (await kube.get(HTTPSCALEDOBJECTS, ns, "api"))["status"]
        assert (status["mode"], status["scaledObject"]) == ("keda", "api")

        # Steady: two resync passes (every 2 s) rewrite nothing, not even the status written
        # just before the cache saw it.
        before = await kube.get(SCALEDOBJECTS, ns, "api")
        seen = (await kube.get(HTTPSCALEDOBJECTS, ns, "api"))["metadata"]["resourceVersion"]
        start = await eventually(lambda: operator_metrics(health_port), "/metrics")
        await eventually(lambda: _resynced_since(health_port, start, passes=2), "two resyncs")
        end = await eventually(lambda: operator_metrics(health_port), "/metrics")
        assert (
            end["wakeway_operator_status_writes_total"]
            == start["wakeway_operator_status_writes_total"]
        )
        # Every pass is timed, failed or not; the queue depth is there.
        passes = end["wakeway_operator_reconcile_duration_seconds_count"]
        assert passes == end["wakeway_operator_reconciles_total"]
        assert passes >= 1
        assert end["wakeway_operator_queue_depth"] >= 0
        after = await kube.get(SCALEDOBJECTS, ns, "api")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        now = (await kube.get(HTTPSCALEDOBJECTS, ns, "api"))["metadata"]["resourceVersion"]
        assert now == seen

        # A change to the HTTPScaledObject updates it.
        await kube.merge_patch(
            HTTPSCALEDOBJECTS,
            ns,
            "api",
            {"spec": {"replicas": {"max": 9}, "scaledownPeriod": 120}},
        )

        async def updated() -> bool:
            so = await scaled_object(kube, ns, "api")
            return so is not None and (
                so["spec"]["maxReplicaCount"],
                so["spec"]["cooldownPeriod"],
            ) == (9, 120)

        await eventually(updated, "the ScaledObject to follow the change")

        # The skip annotation: the one we made is deleted, and none is made again.
        skip = {"httpscaledobject.keda.sh/skip-scaledobject-creation": "true"}
        await kube.merge_patch(HTTPSCALEDOBJECTS, ns, "api", {"metadata": {"annotations": skip}})

        async def gone() -> bool:
            return await scaled_object(kube, ns, "api") is None

        await eventually(gone, "the ScaledObject to be deleted on skip")
        await eventually(
            lambda: reason_is(kube, ns, "api", "True", "ScaledObjectSkipped"), "skipped"
        )
        await kube.merge_patch(
            HTTPSCALEDOBJECTS,
            ns,
            "api",
            {
                "metadata": {
                    "annotations": {"httpscaledobject.keda.sh/skip-scaledobject-creation": None}
                }
            },
        )
        await eventually(lambda: scaled_object(kube, ns, "api"), "the ScaledObject again")

        # Deleting the HTTPScaledObject removes the ScaledObject and leaves the workload.
        await kube.set_scale(DEPLOYMENTS, ns, "api", 1)
        await kube.delete(HTTPSCALEDOBJECTS, ns, "api")
        await eventually(gone, "the ScaledObject to go with its owner")
        scale = await kube.get_scale(DEPLOYMENTS, ns, "api")
        assert scale.replicas == 1
