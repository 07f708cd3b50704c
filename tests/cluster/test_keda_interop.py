"""Interop tier: the real KEDA operator scales a workload through wakeway's scaler.

In the harness cluster's network namespace: ``wakeway interceptor`` (under its ServiceAccount),
``wakeway scaler`` fed by that interceptor's count stream, a counting gRPC tap in front of the
scaler (tests/interop/grpctap.py), ``wakeway operator --mode keda`` (under its ServiceAccount,
watching the test's namespace, with the tap as its scaler address) and the KEDA operator built
from the Go module proxy (scripts/interop-binaries). The HTTPScaledObject is the only object the
test writes besides the workload: wakeway's operator generates the ScaledObject, KEDA acts on it.
KEDA's CRDs are removed again at the end: other tests expect a cluster without KEDA.

The tests run in file order and share one workload: KEDA becomes ready and opens
StreamIsActive, a burst of requests at zero is held and answered once KEDA has scaled to one,
KEDA scales back to zero after ``cooldownPeriod``, and every RPC KEDA made was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness.binaries import Unavailable
from tests.cluster.harness.cluster import Cluster
from tests.cluster.harness.processes import Proc, stop
from tests.cluster.helpers import deployment, eventually, service
from tests.cluster.wakeway_setup import (
    REPO,
    apply,
    documents,
    install_crd,
    install_interceptor_rbac,
    start_interceptor,
)
from tests.interop import binaries
from tests.interop.keda import (
    condition,
    crd_documents,
    healthy,
    install_crds,
    remove_crds,
    start_operator,
)
from wakeway.kube import Kube, NotFound
from wakeway.kube.resources import (
    DEPLOYMENTS,
    HTTPSCALEDOBJECTS,
    NAMESPACES,
    SCALEDOBJECTS,
    SERVICES,
)

pytestmark = pytest.mark.interop

# Ports on the namespace's loopback (distinct from the other cluster tests' ports).
PROXY, ADMIN, SCALER, TAP, KEDA_PROBE, KEDA_METRICS = 28080, 29090, 29091, 29092, 29081, 29666
HOST = "keda.example.com"
COOLDOWN = 5  # the HTTPScaledObject's scaledownPeriod -> the ScaledObject's cooldownPeriod
POLLING = 30  # KEDA's default pollingInterval: how often it re-checks activity to scale down
BURST = 8
STARTUP_DELAY = 2


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@dataclass
class Stack:
    cluster: Cluster
    tap_log: Path
    namespace: str
    ready: bool = False  # the first test set the workload up
    last_request: float = 0.0


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Stack]:
    try:
        keda = binaries.keda()
    except Unavailable as e:
        reason = f"interop tier cannot run: {e}"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true, so this is a failure)", pytrace=False)
        pytest.skip(reason)

    ns = f"keda-{uuid.uuid4().hex[:6]}"
    crds = crd_documents(keda.crds)

    async def prepare() -> tuple[Path, Path, list[str]]:
        kube = await Kube.connect(str(cluster.kubeconfig))
        try:
            await install_crd(kube)
            await install_interceptor_rbac(kube)
            await apply(kube, documents(REPO / "config" / "base" / "operator-rbac.yaml"))
            created = await install_crds(kube, crds)
            await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
        finally:
            await kube.close()
        interceptor = await cluster.service_account_kubeconfig(
            "wakeway", "wakeway-interceptor", in_netns=True
        )
        operator = await cluster.service_account_kubeconfig(
            "wakeway", "wakeway-operator", in_netns=True
        )
        return interceptor, operator, created

    async def clean_up(created: list[str]) -> None:
        kube = await Kube.connect(str(cluster.kubeconfig))
        try:
            await kube.delete(NAMESPACES, None, ns)
            await remove_crds(kube, created)
        finally:
            await kube.close()

    interceptor_kubeconfig, operator_kubeconfig, created = asyncio.run(prepare())
    tap_log = cluster.dir / "grpctap.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{REPO / 'src'}"
    operator_env = {
        **env,
        "WAKEWAY_KUBECONFIG": str(operator_kubeconfig),
        "WAKEWAY_OPERATOR_MODE": "keda",
        "WAKEWAY_OPERATOR_NAMESPACE": ns,
        "WAKEWAY_OPERATOR_SCALER_ADDRESS": f"127.0.0.1:{TAP}",
        "WAKEWAY_OPERATOR_HEALTH_PORT": "0",
    }
    procs: list[Proc] = [
        start_interceptor(cluster, interceptor_kubeconfig, PROXY, ADMIN),
        cluster.popen_in_netns(
            "scaler",
            [
                sys.executable,
                "-m",
                "wakeway.cli",
                "scaler",
                "--listen",
                f"127.0.0.1:{SCALER}",
                "--interceptors",
                f"127.0.0.1:{ADMIN}",
            ],
            env=env,
        ),
        cluster.popen_in_netns(
            "grpctap",
            [
                sys.executable,
                "-m",
                "tests.interop.grpctap",
                "--listen",
                f"127.0.0.1:{TAP}",
                "--upstream",
                f"127.0.0.1:{SCALER}",
                "--log",
                str(tap_log),
            ],
            env=env,
        ),
        cluster.popen_in_netns(
            "wakeway-operator", [sys.executable, "-m", "wakeway.cli", "operator"], env=operator_env
        ),
        start_operator(
            cluster,
            keda.operator,
            watch_namespace=ns,
            probe_port=KEDA_PROBE,
            metrics_service_port=KEDA_METRICS,
        ),
    ]
    try:
        deadline = time.monotonic() + 60
        while not healthy(cluster, KEDA_PROBE):
            dead = [p for p in procs if not p.alive()]
            if dead:
                pytest.fail(f"{dead[0].name} exited:\n{dead[0].tail()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"KEDA did not become ready:\n{procs[-1].tail()}", pytrace=False)
            time.sleep(0.2)
        yield Stack(cluster, tap_log, ns)
    finally:
        for proc in reversed(procs):
            stop(proc, 5.0)
        asyncio.run(clean_up(created))


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    k = await Kube.connect(str(cluster.kubeconfig))
    try:
        yield k
    finally:
        await k.close()


def httpso(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": name},
        "spec": {
            "hosts": [HOST],
            "scaleTargetRef": {"name": name, "service": name, "port": 80},
            "replicas": {"min": 0, "max": 3},
            "scaledownPeriod": COOLDOWN,
            "timeouts": {"conditionWait": "90s"},
        },
    }


def tap_events(stack: Stack) -> list[dict[str, Any]]:
    try:
        lines = stack.tap_log.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.strip()]


async def scaled_object(kube: Kube, ns: str) -> dict[str, Any]:
    return await kube.get(SCALEDOBJECTS, ns, "web")


async def replicas(kube: Kube, ns: str) -> int:
    return int((await kube.get(DEPLOYMENTS, ns, "web"))["spec"].get("replicas") or 0)


async def test_keda_adopts_the_generated_scaledobject_and_opens_the_stream(
    stack: Stack, kube: Kube
) -> None:
    ns = stack.namespace
    # The pod listens STARTUP_DELAY s after it starts, so requests stay held (and the
    # ScaledObject Active) long enough to be seen; KEDA marks it inactive again at its next
    # check once nothing is in flight, while the replicas wait for the cooldown.
    slow = {"wakeway.test/startup-delay": str(STARTUP_DELAY)}
    await kube.create(DEPLOYMENTS, ns, deployment("web", replicas=0, port=8080, annotations=slow))
    svc = service("web", port=80)
    svc["spec"]["ports"][0]["targetPort"] = 8080
    await kube.create(SERVICES, ns, svc)
    created = await kube.create(HTTPSCALEDOBJECTS, ns, httpso("web"))

    async def generated() -> dict[str, Any] | None:
        try:
            return await scaled_object(kube, ns)
        except NotFound:
            return None

    so = await eventually(generated, "wakeway's operator to create the ScaledObject", within=30)
    (owner,) = so["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("HTTPScaledObject", created["metadata"]["uid"])
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "external-push"
    assert trigger["metadata"]["scalerAddress"] == f"127.0.0.1:{TAP}"
    assert so["spec"]["cooldownPeriod"] == COOLDOWN
    stack.ready = True

    async def ready() -> dict[str, Any] | None:
        so = await scaled_object(kube, ns)
        return so if condition(so, "Ready") == "True" else None

    so = await eventually(ready, "KEDA to mark the ScaledObject Ready", within=60)
    assert condition(so, "Active") != "True"
    assert await replicas(kube, ns) == 0

    async def stream_open() -> bool:
        return any(
            e["method"] == "StreamIsActive"
            and e.get("event") == "open"
            and e["request"]["name"] == "web"
            for e in tap_events(stack)
        )

    await eventually(stream_open, "KEDA to open StreamIsActive to the scaler", within=30)
    # KEDA built its HPA from our GetMetricSpec, and put its own sN- prefix on the name.
    metric = f"http-{ns}-web-concurrency"
    assert so["status"].get("externalMetricNames") == [f"s0-{metric}"]


async def test_first_request_wakes_the_workload_and_every_held_request_is_answered(
    stack: Stack, kube: Kube
) -> None:
    ns = stack.namespace
    assert stack.ready, "the first test did not set the workload up"
    active = asyncio.Event()

    async def watch_active() -> None:
        while not active.is_set():
            if condition(await scaled_object(kube, ns), "Active") == "True":
                active.set()
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_active())
    try:
        began = time.monotonic()
        answers = await asyncio.wrap_future(
            stack.cluster.netns.submit(lambda: asyncio.run(_burst(BURST, within=90)))
        )
        stack.last_request = time.monotonic()
        assert [status for status, _, _ in answers] == [200] * BURST, answers
        assert all(body.startswith("web-") for _, body, _ in answers), answers
        assert all(cold == "true" for _, _, cold in answers), answers
        print(f"cold start through KEDA: {stack.last_request - began:.2f} s for {BURST} requests")
        assert stack.last_request - began >= STARTUP_DELAY
        assert await replicas(kube, ns) == 1  # only KEDA scales this Deployment
        async with asyncio.timeout(10):
            await active.wait()  # seen while the requests were held
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_quiet_workload_goes_back_to_zero_after_the_cooldown(
    stack: Stack, kube: Kube
) -> None:
    ns = stack.namespace
    assert stack.last_request, "the earlier tests did not run"

    async def at_zero() -> bool:
        return await replicas(kube, ns) == 0

    await eventually(
        at_zero,
        "KEDA to scale the Deployment to zero",
        within=COOLDOWN + POLLING + 30,
        interval=0.5,
    )
    quiet_for = time.monotonic() - stack.last_request
    assert quiet_for >= COOLDOWN, f"scaled to zero {quiet_for:.1f} s after the last request"

    async def inactive() -> dict[str, Any] | None:
        so = await scaled_object(kube, ns)
        return so if condition(so, "Active") == "False" else None

    so = await eventually(inactive, "the ScaledObject to be inactive", within=30)
    assert condition(so, "Ready") == "True"


async def test_the_scaler_answered_every_rpc_keda_made(stack: Stack) -> None:
    assert stack.ready, "the earlier tests did not run"
    events = [e for e in tap_events(stack) if e["request"].get("name") == "web"]
    calls = [e for e in events if "event" not in e]
    count: dict[str, int] = {}
    for e in calls:
        count[e["method"]] = count.get(e["method"], 0) + 1
    opened = [e for e in events if e.get("event") == "open"]
    messages = [e for e in events if e.get("event") == "message"]
    count["StreamIsActive"] = len(opened)
    print(f"RPCs KEDA made: {count}; StreamIsActive messages: {len(messages)}")

    failed = [e for e in calls if e["code"] != "OK" and e["method"] != "StreamMetricSpec"]
    assert not failed, failed
    failed_streams = [
        e for e in events if e.get("event") == "close" and e["code"] not in ("OK", "CANCELLED")
    ]
    assert not failed_streams, failed_streams
    for method in ("GetMetricSpec", "GetMetrics", "IsActive", "StreamIsActive"):
        assert count.get(method, 0) > 0, f"KEDA never called {method}: {count}"

    metric = f"http-{stack.namespace}-web-concurrency"
    for e in calls:
        if e["method"] == "GetMetrics":
            assert not re.match(r"s\d+-", e["request"]["metricName"]), e
            assert e["request"]["metricName"] == metric, e
        if e["method"] in ("GetMetrics", "GetMetricSpec"):
            assert e["response"]["metricNames"] == [metric], e
    # The stream said active while requests were held, and idle otherwise.
    results = [m["response"]["result"] for m in messages]
    assert True in results, results
    assert False in results, results


async def _burst(n: int, within: float) -> list[tuple[int, str, str]]:
    """n GETs at once to the interceptor, each on its own connection (run inside the netns)."""

    async def one() -> tuple[int, str, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", PROXY)
        try:
            writer.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
            raw = await reader.read()
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        return status, body.decode(errors="replace"), headers.get("x-wakeway-cold-start", "")

    async with asyncio.timeout(within):
        return list(await asyncio.gather(*(one() for _ in range(n))))
