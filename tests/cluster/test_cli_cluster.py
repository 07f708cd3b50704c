"""``wakeway status|wake|sleep|explain`` against a real API server with wakeway in standalone
mode: the commands run as processes with the harness's kubeconfig, as a user runs them; and
``kubectl get httpso`` (the tier's Go-built kubectl) shows the Active and Bound columns, and
``kubectl wakeway`` runs the commands as a plugin."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness.binaries import Binaries
from tests.cluster.harness.cluster import SPARE_IPS, Cluster
from tests.cluster.harness.podrunner import NEVER_READY
from tests.cluster.helpers import eventually
from tests.cluster.standalone import (
    Standalone,
    conditions,
    make_app,
    ready,
    replicas,
    running_standalone,
)
from tests.cluster.wakeway_setup import stamped_route
from wakeway.kube import Kube
from wakeway.kube.resources import (
    HTTPROUTES,
    HTTPSCALEDOBJECTS,
    INTERCEPTORROUTES,
    NAMESPACES,
    SERVICES,
    Resource,
)

pytestmark = pytest.mark.cluster

PROXY, ADMIN, SCALER, SCALER_METRICS = 18683, 18684, 18685, 18686
# The scaler's metrics port listens on a pod-range address: the API server's service proxy
# reaches it there, through a Service of the module's own namespace and its Endpoints.
SCALER_IP = SPARE_IPS[2]
SCALER_NS = "cli-scaler"
SCALER_SERVICE = f"{SCALER_NS}/wakeway-scaler:metrics"
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints")
PODS = Resource("", "v1", "pods", "Pod")


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    metrics = {
        "WAKEWAY_SCALER_METRICS_HOST": SCALER_IP,
        "WAKEWAY_SCALER_METRICS_PORT": str(SCALER_METRICS),
    }
    with running_standalone(cluster, "cli", PROXY, ADMIN, SCALER, scaler_env=metrics) as s:
        asyncio.run(scaler_service(cluster))
        yield s


async def scaler_service(cluster: Cluster) -> None:
    """Service ``cli-scaler/wakeway-scaler`` with a ``metrics`` port, as the install has, and
    its Endpoints naming where this stack's scaler serves metrics. The API server proxies only
    to an address of a Pod, so a Pod object stands for the scaler process: bound to a node no
    one runs (the pod runner leaves it alone), its status given the scaler's address."""
    kube = await Kube.connect(str(cluster.kubeconfig))
    try:
        await kube.create(NAMESPACES, None, {"metadata": {"name": SCALER_NS}})
        port = {"name": "metrics", "port": 9092, "targetPort": SCALER_METRICS}
        await kube.create(
            SERVICES, SCALER_NS, {"metadata": {"name": "wakeway-scaler"}, "spec": {"ports": [port]}}
        )
        container = {"name": "scaler", "image": "wakeway/scaler"}
        pod = {"nodeName": "outside-the-harness", "containers": [container]}
        await kube.create(PODS, SCALER_NS, {"metadata": {"name": "scaler"}, "spec": pod})
        await kube.request(
            "PATCH",
            PODS.path(SCALER_NS, "scaler") + "/status",
            body={"status": {"podIP": SCALER_IP, "podIPs": [{"ip": SCALER_IP}]}},
            content_type="application/merge-patch+json",
        )
        address = {
            "ip": SCALER_IP,
            "targetRef": {"kind": "Pod", "namespace": SCALER_NS, "name": "scaler"},
        }
        subset = {
            "addresses": [address],
            "ports": [{"name": "metrics", "port": SCALER_METRICS}],
        }
        await kube.create(
            ENDPOINTS, SCALER_NS, {"metadata": {"name": "wakeway-scaler"}, "subsets": [subset]}
        )
    finally:
        await kube.close()


def run(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAKEWAY_", "KUBE"))}
    return subprocess.run(
        [sys.executable, "-m", "wakeway.cli", *args, "--kubeconfig", str(cluster.kubeconfig)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, cluster, *args)


async def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    done = await cli(cluster, "status", name, "-n", ns, "-o", "json")
    assert done.returncode == 0, done.stderr
    (item,) = json.loads(done.stdout)["items"]
    return dict(item)


async def test_status_wake_and_sleep_through_the_scale_subresource(
    stack: Standalone, cluster: Cluster, kube: Kube
) -> None:
    ns = await make_app(kube, "shop", scaledownPeriod=300)
    await ready(kube, ns, "shop")

    async def inactive() -> bool:
        return (await conditions(kube, ns, "shop")).get("Active") == "False"

    await eventually(inactive, "the operator to say it is not Active", within=30)
    asleep = await status(cluster, ns, "shop")
    assert asleep | {"lastSleep": None} == {
        "namespace": ns,
        "name": "shop",
        "state": "asleep",
        "replicas": 0,
        "ready": 0,
        "inFlight": None,
        "held": None,
        "routesBound": 0,
        "routes": 0,
        "lastWake": None,
        "lastSleep": None,
        "mode": "standalone",
        "workload": "Deployment/shop",
    }
    assert asleep["lastSleep"] is not None  # since when Active is False

    woke = await cli(cluster, "wake", "shop", "-n", ns)
    assert woke.returncode == 0, woke.stderr
    assert woke.stdout.splitlines() == [
        f"{ns}/shop: scaled Deployment {ns}/shop to 1",
        "it sleeps again after 300s without requests (scaledownPeriod)",
    ]
    assert await replicas(kube, ns, "shop") == 1

    async def awake() -> bool:
        return bool((await status(cluster, ns, "shop"))["state"] == "awake")

    await eventually(awake, "the pod to be ready", within=60)
    table = await cli(cluster, "status", "-n", ns)
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split()[:3] == ["NAME", "STATE", "REPLICAS"]
    assert row.split()[:5] == ["shop", "awake", "1/1", "-", "-"]

    slept = await cli(cluster, "sleep", "shop", "-n", ns, "-o", "json")
    assert slept.returncode == 0, slept.stderr
    assert json.loads(slept.stdout)["messages"][0] == f"{ns}/shop: scaled Deployment {ns}/shop to 0"
    assert await replicas(kube, ns, "shop") == 0

    everywhere = await cli(cluster, "status", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    assert any(line.split()[:2] == [ns, "shop"] for line in everywhere.stdout.splitlines())


async def test_status_shows_requests_in_flight_and_held_from_the_scaler(
    stack: Standalone, cluster: Cluster, kube: Kube
) -> None:
    """Through the API server's service proxy to the scaler's /targets: two requests held for
    a workload that never gets ready show as 2 in flight and 2 held; without the flag's Service
    (a user who may not proxy to it), '-' and a note saying why."""
    ns = await make_app(kube, "slow", annotations={NEVER_READY: "true"})
    await ready(kube, ns, "slow")
    held = [stack.get(f"slow.{ns}.test", timeout=60) for _ in range(2)]
    try:

        async def both_held() -> bool:
            done = await cli(
                cluster,
                "status",
                "slow",
                "-n",
                ns,
                "-o",
                "json",
                "--scaler-service",
                SCALER_SERVICE,
            )
            assert done.returncode == 0, done.stderr
            (item,) = json.loads(done.stdout)["items"]
            assert (item["inFlight"], item["held"]) == (2, 2), (item, done.stderr)
            return True

        await eventually(both_held, "status to show both requests held", within=30)
        table = await cli(cluster, "status", "-n", ns, "--scaler-service", SCALER_SERVICE)
        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines()[1].split()[:5] == ["slow", "waking", "0/1", "2", "2"]
        assert table.stderr == ""

        unknown = await cli(cluster, "status", "-n", ns)  # the install's default: none here
        assert unknown.returncode == 0, unknown.stderr
        assert unknown.stdout.splitlines()[1].split()[3:5] == ["-", "-"]
        assert unknown.stderr.startswith(
            "note: requests in flight and held are not shown: the scaler's /targets through "
            "Service wakeway/wakeway-scaler port metrics ("
        )
    finally:
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)


async def test_errors_name_what_is_wrong(stack: Standalone, cluster: Cluster) -> None:
    missing = await cli(cluster, "wake", "nope", "-n", "default")
    assert (missing.returncode, missing.stderr) == (
        1,
        "wakeway wake: HTTPScaledObject default/nope not found\n",
    )
    context = await cli(cluster, "status", "--context", "nope")
    assert context.returncode == 2
    assert "no context named 'nope'" in context.stderr
    assert "Traceback" not in missing.stderr + context.stderr


async def test_explain_names_the_winning_httproute_rule(
    stack: Standalone, cluster: Cluster, kube: Kube
) -> None:
    ns = await make_app(kube, "web", routes=[{"name": "storefront"}])
    host = f"shop.{ns}.test"
    await kube.create(HTTPROUTES, ns, stamped_route(ns, "storefront", host))
    await ready(kube, ns, "web")

    async def bound() -> bool:
        return (await conditions(kube, ns, "web")).get("Bound") == "True"

    await eventually(bound, "the route binding to carry traffic", within=30)
    done = await cli(cluster, "explain", "--host", host, "--path", "/cart", "-o", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    winner = doc["winner"]
    assert (winner["object"], winner["route"], winner["rule"]) == (
        f"{ns}/web",
        f"{ns}/storefront",
        "#0",
    )
    # The object's own host claim matches too, and says why it did not win.
    why = {(c["object"], c["claim"]): c["verdict"] for c in doc["candidates"]}
    assert why[(f"{ns}/web", f"host web.{ns}.test path /")] == "host"

    text = await cli(cluster, "explain", "--host", f"web.{ns}.test")
    assert text.returncode == 0, text.stderr
    assert f"goes to: {ns}/web\n  via host web.{ns}.test path /\n" in text.stdout


async def test_explain_finds_an_interceptor_route_by_its_rules(
    stack: Standalone, cluster: Cluster, kube: Kube
) -> None:
    """The add-on's InterceptorRoutes are routed beside HTTPScaledObjects; explain reads them."""
    ns = await make_app(kube, "web")
    rules = [{"hosts": [f"api.{ns}.test"], "paths": [{"value": "/v2"}]}]
    spec = {
        "target": {"service": "web", "port": 80},
        "rules": rules,
        "scalingMetric": {"concurrency": {"targetValue": 10}},
    }
    doc = {"apiVersion": "http.keda.sh/v1beta1", "kind": "InterceptorRoute", "spec": spec}
    await kube.create(INTERCEPTORROUTES, ns, {**doc, "metadata": {"name": "api"}})
    done = await cli(
        cluster, "explain", "--host", f"api.{ns}.test", "--path", "/v2/x", "-o", "json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["winner"]["object"] == f"{ns}/api"
    elsewhere = await cli(
        cluster, "explain", "--host", f"api.{ns}.test", "--path", "/v1", "-o", "json"
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert json.loads(elsewhere.stdout)["winner"] is None


async def test_kubectl_get_httpso_shows_active_and_bound_and_the_plugin_runs(
    stack: Standalone, cluster: Cluster, kube: Kube, binaries: Binaries
) -> None:
    ns = await make_app(kube, "site", routes=[{"name": "absent"}])

    async def bound_known() -> bool:
        return "Bound" in await conditions(kube, ns, "site")

    await eventually(bound_known, "the operator to write Bound", within=30)
    obj = await kube.get(HTTPSCALEDOBJECTS, ns, "site")
    want = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
    kubectl = [binaries.path("kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    done = await asyncio.to_thread(
        subprocess.run,
        [*kubectl, "get", "httpso", "-n", ns],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    header, row = done.stdout.splitlines()
    columns = header.split()
    assert columns[-3:] == ["ACTIVE", "BOUND", "AGE"]
    cells = dict(zip(columns, row.split(), strict=True))
    assert (cells["ACTIVE"], cells["BOUND"]) == (want["Active"], want["Bound"])
    assert cells["BOUND"] == "False"  # the route it names does not exist

    # The same commands as a kubectl plugin: kubectl finds `kubectl-wakeway` on PATH (the
    # console script pyproject.toml declares) and the plugin reads $KUBECONFIG as kubectl does.
    scripts = Path(sys.executable).parent
    assert (scripts / "kubectl-wakeway").exists(), "install the package: scripts/bootstrap"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WAKEWAY_", "KUBE"))}
    env |= {"PATH": f"{scripts}{os.pathsep}{env['PATH']}", "KUBECONFIG": str(cluster.kubeconfig)}
    plugin = await asyncio.to_thread(
        subprocess.run,
        [binaries.path("kubectl"), "wakeway", "status", "site", "-n", ns, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plugin.returncode == 0, plugin.stderr
    (item,) = json.loads(plugin.stdout)["items"]
    assert (item["namespace"], item["name"], item["routesBound"]) == (ns, "site", 0)
