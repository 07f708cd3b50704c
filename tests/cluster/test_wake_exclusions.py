"""Wake exclusions and maintenance on a real API server, standalone mode: a bot and a health
check do not wake a Deployment at zero and get their answers; once it is awake the bot is
forwarded to the pod; maintenance is a condition and answers everything. The CRD's rules refuse
what they can check, naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness.cluster import Cluster
from tests.cluster.helpers import Answer, eventually, http_request
from tests.cluster.standalone import (
    Standalone,
    conditions,
    make_app,
    ready,
    replicas,
    running_standalone,
)
from tests.component.test_interceptor_statics import BOT, EXCLUSIONS
from wakeway.kube import Invalid, Kube
from wakeway.kube.resources import HTTPSCALEDOBJECTS
from wakeway.model.exclusions import EXCLUDED_BODY, MAINTENANCE_BODY

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Standalone]:
    with running_standalone(cluster, "wakeex", 18591, 19591, 19592) as s:
        yield s


def call(stack: Standalone, host: str, path: str = "/", **headers: str) -> asyncio.Task[Answer]:
    return http_request(stack.cluster, host, stack.proxy, path=path, headers=headers, timeout=30)


async def routed(stack: Standalone, host: str, **headers: str) -> Answer:
    """The first answer that is not the 404 of an interceptor that has not seen the object yet
    (a 404 wakes nothing)."""

    async def check() -> Answer | None:
        answer = await call(stack, host, **headers)
        return None if answer.status == 404 else answer

    return await eventually(check, f"{host} to be routed", within=30)


async def test_a_bot_does_not_wake_a_deployment_at_zero_and_is_forwarded_once_awake(
    stack: Standalone, kube: Kube
) -> None:
    ns = await make_app(kube, "site", scaledownPeriod=300, wakeExclusions=EXCLUSIONS)
    await ready(kube, ns, "site")
    host = f"site.{ns}.test"

    bot = await routed(stack, host, **BOT)
    assert (bot.status, bot.body) == (503, EXCLUDED_BODY)
    health = await call(stack, host, "/healthz")
    assert (health.status, health.body) == (200, "ok\n")
    # Answered at once, never held: nothing was counted, so nothing can wake it.
    assert not [e for e in stack.events("cold") if e.get("target") == f"{ns}/site"]
    assert await replicas(kube, ns, "site") == 0

    user = await call(stack, host, "/page")  # a user's request wakes it and is served
    assert user.status == 200
    assert await replicas(kube, ns, "site") == 1
    forwarded = await call(stack, host, "/page", **BOT)
    assert forwarded.status == 200
    assert forwarded.body.startswith("site-")  # the pod's name: the pod answered
    health = await call(stack, host, "/healthz")
    assert (health.status, health.body) == (200, "ok\n")  # Always: still the static answer


async def test_maintenance_is_a_condition_and_answers_everything(
    stack: Standalone, kube: Kube
) -> None:
    ns = await make_app(kube, "down", maintenance={})
    await ready(kube, ns, "down")

    async def shown() -> bool:
        return (await conditions(kube, ns, "down")).get("Maintenance") == "True"

    await eventually(shown, "the Maintenance condition", within=30)
    answer = await routed(stack, f"down.{ns}.test")
    assert (answer.status, answer.body) == (503, MAINTENANCE_BODY)
    assert await replicas(kube, ns, "down") == 0

    await kube.merge_patch(HTTPSCALEDOBJECTS, ns, "down", {"spec": {"maintenance": None}})

    async def gone() -> bool:
        return "Maintenance" not in await conditions(kube, ns, "down")

    await eventually(gone, "the Maintenance condition to go", within=30)


@pytest.mark.parametrize(
    ("exclusion", "field"),
    [
        ({"paths": [{"value": "healthz"}]}, "spec.wakeExclusions[0].paths[0].value"),
        ({"response": {"statusCode": 200}}, "spec.wakeExclusions[0].paths"),
        (
            {"userAgent": "bot", "response": {"statusCode": 99}},
            "spec.wakeExclusions[0].response.statusCode",
        ),
        (
            {"userAgent": "bot", "response": {"headers": {"Content-Length": "1"}}},
            "spec.wakeExclusions[0].response.headers",
        ),
        ({"userAgent": "bot", "responseMode": "Never"}, "spec.wakeExclusions[0].responseMode"),
    ],
)
async def test_what_the_crd_can_check_is_refused_naming_the_field(
    stack: Standalone, kube: Kube, exclusion: dict[str, Any], field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await make_app(kube, "refused", wakeExclusions=[exclusion])
    assert field in str(caught.value)


async def test_a_user_agent_that_is_not_re2_is_a_condition_naming_the_field(
    stack: Standalone, kube: Kube
) -> None:
    ns = await make_app(kube, "regex", wakeExclusions=[{"userAgent": "bot(?=s)"}])

    async def reported() -> str | None:
        obj = await kube.get(HTTPSCALEDOBJECTS, ns, "regex")
        for c in (obj.get("status") or {}).get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "False":
                return str(c["message"])
        return None

    message = await eventually(reported, "Ready=False", within=30)
    assert "spec.wakeExclusions[0].userAgent: 'bot(?=s)' is not an RE2" in message
