"""Interop tier: the real KEDA operator scales a workload through wakeway's scaler.

The stack (tests/interop/stack.py): wakeway's interceptor, scaler and operator (KEDA mode), a
counting gRPC tap in front of the scaler, and KEDA's operator and metrics API server built from
the Go module proxy (scripts/interop-binaries), all in the harness cluster's network namespace.
The HTTPScaledObject is the only object the test writes besides the workload: wakeway's operator
generates the ScaledObject, KEDA acts on it.

The tests share one workload, whose stages each run once, by whichever test needs them first
(any test can run alone): KEDA becomes ready and opens StreamIsActive, a burst of requests at
zero is held and answered once KEDA has scaled to one, KEDA scales back to zero after
``cooldownPeriod``, and every RPC KEDA made was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import eventually
from tests.interop.keda import condition
from tests.interop.stack import KedaStack, Ports, deployment_at_zero, keda_stack
from wakeway.kube import Kube, NotFound
from wakeway.kube.resources import DEPLOYMENTS, HTTPSCALEDOBJECTS, SCALEDOBJECTS

pytestmark = pytest.mark.interop

# Ports on the namespace's loopback (distinct from the other cluster tests' ports).
PORTS = Ports.block(29600)
PROXY, TAP = PORTS.proxy, PORTS.tap
HOST = "keda.example.com"
COOLDOWN = 5  # the HTTPScaledObject's scaledownPeriod -> the ScaledObject's cooldownPeriod
POLLING = 30  # KEDA's default pollingInterval: how often it re-checks activity to scale down
BURST = 8
STARTUP_DELAY = 2


@dataclass(frozen=True)
class Adoption:
    """The workload set up, as it was once KEDA had adopted its ScaledObject."""

    httpso_uid: str
    generated: dict[str, Any]  # the ScaledObject as wakeway's operator first wrote it
    ready: dict[str, Any]  # the ScaledObject once KEDA marked it Ready
    replicas_when_ready: int


@dataclass(frozen=True)
class Wake:
    """The burst of requests that woke the workload, and what was seen meanwhile."""

    answers: list[tuple[int, str, str]]  # status, body, X-Wakeway-Cold-Start
    began: float
    last_request: float  # when the last answer came (time.monotonic())
    replicas_after: int
    active_seen: bool  # the ScaledObject was Active while the requests were held


@dataclass
class Stack:
    """The module's stack and the stages of the workload's life, each run once by whichever
    test needs it first (so each test can also run alone)."""

    keda: KedaStack
    adoption: Adoption | None = None
    wake: Wake | None = None

    @property
    def cluster(self) -> Cluster:
        return self.keda.cluster

    @property
    def namespace(self) -> str:
        return self.keda.namespace


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Stack]:
    with keda_stack(cluster, PORTS, "keda") as keda:
        yield Stack(keda)


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


async def scaled_object(kube: Kube, ns: str) -> dict[str, Any]:
    return await kube.get(SCALEDOBJECTS, ns, "web")


async def replicas(kube: Kube, ns: str) -> int:
    return int((await kube.get(DEPLOYMENTS, ns, "web"))["spec"].get("replicas") or 0)


async def adopted(stack: Stack, kube: Kube) -> Adoption:
    """The workload at zero and its HTTPScaledObject; waits until KEDA has adopted the
    generated ScaledObject (Ready) and opened StreamIsActive to the scaler."""
    if stack.adoption is not None:
        return stack.adoption
    ns = stack.namespace
    # The pod listens STARTUP_DELAY s after it starts, so requests stay held (and the
    # ScaledObject Active) long enough to be seen; KEDA marks it inactive again at its next
    # check once nothing is in flight, while the replicas wait for the cooldown.
    slow = {"wakeway.test/startup-delay": str(STARTUP_DELAY)}
    await deployment_at_zero(kube, ns, "web", slow)
    created = await kube.create(HTTPSCALEDOBJECTS, ns, httpso("web"))

    async def generated() -> dict[str, Any] | None:
        try:
            return await scaled_object(kube, ns)
        except NotFound:
            return None

    first = await eventually(generated, "wakeway's operator to create the ScaledObject", within=30)

    async def ready() -> dict[str, Any] | None:
        so = await scaled_object(kube, ns)
        return so if condition(so, "Ready") == "True" else None

    so = await eventually(ready, "KEDA to mark the ScaledObject Ready", within=60)
    at_ready = await replicas(kube, ns)

    async def stream_open() -> bool:
        return any(
            e["method"] == "StreamIsActive"
            and e.get("event") == "open"
            and e["request"]["name"] == "web"
            for e in stack.keda.tap_events()
        )

    await eventually(stream_open, "KEDA to open StreamIsActive to the scaler", within=30)
    stack.adoption = Adoption(created["metadata"]["uid"], first, so, at_ready)
    return stack.adoption


async def woken(stack: Stack, kube: Kube) -> Wake:
    """A burst of requests at zero (once the workload is adopted), answered once KEDA has
    scaled it to one."""
    if stack.wake is not None:
        return stack.wake
    await adopted(stack, kube)
    ns = stack.namespace
    active = asyncio.Event()

    async def watch_active() -> None:
        while not active.is_set():  # a bounded poll: cancelled below
            if condition(await scaled_object(kube, ns), "Active") == "True":
                active.set()
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_active())
    try:
        began = time.monotonic()
        answers = await asyncio.wrap_future(
            stack.cluster.netns.submit(lambda: asyncio.run(_burst(BURST, within=90)))
        )
        last = time.monotonic()
        after = await replicas(kube, ns)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await active.wait()  # seen while the requests were held
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    stack.wake = Wake(answers, began, last, after, active.is_set())
    return stack.wake


async def test_keda_adopts_the_generated_scaledobject_and_opens_the_stream(
    stack: Stack, kube: Kube
) -> None:
    a = await adopted(stack, kube)
    (owner,) = a.generated["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("HTTPScaledObject", a.httpso_uid)
    (trigger,) = a.generated["spec"]["triggers"]
    assert trigger["type"] == "external-push"
    assert trigger["metadata"]["scalerAddress"] == f"127.0.0.1:{TAP}"
    assert a.generated["spec"]["cooldownPeriod"] == COOLDOWN
    assert condition(a.ready, "Active") != "True"
    assert a.replicas_when_ready == 0
    # KEDA built its HPA from our GetMetricSpec, and put its own sN- prefix on the name.
    metric = f"http-{stack.namespace}-web-concurrency"
    assert a.ready["status"].get("externalMetricNames") == [f"s0-{metric}"]


async def test_first_request_wakes_the_workload_and_every_held_request_is_answered(
    stack: Stack, kube: Kube
) -> None:
    w = await woken(stack, kube)
    answers = w.answers
    assert [status for status, _, _ in answers] == [200] * BURST, answers
    assert all(body.startswith("web-") for _, body, _ in answers), answers
    assert all(cold == "true" for _, _, cold in answers), answers
    print(f"cold start through KEDA: {w.last_request - w.began:.2f} s for {BURST} requests")
    assert w.last_request - w.began >= STARTUP_DELAY
    assert w.replicas_after == 1  # only KEDA scales this Deployment
    assert w.active_seen


async def test_quiet_workload_goes_back_to_zero_after_the_cooldown(
    stack: Stack, kube: Kube
) -> None:
    ns = stack.namespace
    w = await woken(stack, kube)

    async def at_zero() -> bool:
        return await replicas(kube, ns) == 0

    await eventually(
        at_zero,
        "KEDA to scale the Deployment to zero",
        within=COOLDOWN + POLLING + 30,
        interval=0.5,
    )
    quiet_for = time.monotonic() - w.last_request
    assert quiet_for >= COOLDOWN, f"scaled to zero {quiet_for:.1f} s after the last request"

    async def inactive() -> dict[str, Any] | None:
        so = await scaled_object(kube, ns)
        return so if condition(so, "Active") == "False" else None

    so = await eventually(inactive, "the ScaledObject to be inactive", within=30)
    assert condition(so, "Ready") == "True"


async def test_the_scaler_answered_every_rpc_keda_made(stack: Stack, kube: Kube) -> None:
    await woken(stack, kube)
    methods = ("GetMetricSpec", "GetMetrics", "IsActive", "StreamIsActive")

    def tally() -> tuple[list[dict[str, Any]], dict[str, int]]:
        events = [e for e in stack.keda.tap_events() if e["request"].get("name") == "web"]
        count: dict[str, int] = {}
        for e in events:
            if "event" not in e or e["event"] == "open":
                count[e["method"]] = count.get(e["method"], 0) + 1
        return events, count

    async def every_method() -> bool:  # IsActive comes at KEDA's polling interval
        return all(tally()[1].get(m, 0) > 0 for m in methods)

    await eventually(every_method, "KEDA to call every method", within=POLLING + 30)
    events, count = tally()
    calls = [e for e in events if "event" not in e]
    messages = [e for e in events if e.get("event") == "message"]
    print(f"RPCs KEDA made: {count}; StreamIsActive messages: {len(messages)}")

    failed = [e for e in calls if e["code"] != "OK" and e["method"] != "StreamMetricSpec"]
    assert not failed, failed
    failed_streams = [
        e for e in events if e.get("event") == "close" and e["code"] not in ("OK", "CANCELLED")
    ]
    assert not failed_streams, failed_streams

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
