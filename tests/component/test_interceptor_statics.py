"""Wake exclusions and maintenance on a real interceptor: bots and probes wake nothing and count
for nothing; asleep they get the configured answer, awake they are forwarded (unless Always)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest

from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
    until,
)
from tests.metrics_text import value
from wakeway.interceptor import Interceptor
from wakeway.model.exclusions import EXCLUDED_BODY, MAINTENANCE_BODY
from wakeway.model.httpso import HTTPScaledObject

EXEMPT = "wakeway_exempt_requests_total"
pytestmark = pytest.mark.component

BOT = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}
EXCLUSIONS: list[dict[str, Any]] = [
    {"userAgent": "(?i)(bot|crawler|spider)"},
    {
        "paths": [{"type": "Exact", "value": "/healthz"}],
        "response": {"statusCode": 200, "body": "ok\n"},
        "responseMode": "Always",
    },
]


def requests_of(interceptor: Interceptor, target: HTTPScaledObject) -> tuple[int, int, int]:
    counts = interceptor.counts().get(target.key)
    return (counts.requests, counts.in_flight, counts.held) if counts else (0, 0, 0)


async def metrics(interceptor: Interceptor, session: aiohttp.ClientSession) -> str:
    async with session.get(f"http://127.0.0.1:{interceptor.admin_port}/metrics") as resp:
        return await resp.text()


async def test_bots_and_health_checks_neither_wake_nor_count(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    target = make_target(wakeExclusions=EXCLUSIONS)
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    woken: list[str] = []
    interceptor.on_cold(lambda t: woken.append(t.key))
    base = f"http://127.0.0.1:{interceptor.proxy_port}"

    # Asleep: the configured answers, nothing woken, nothing counted.
    async with session.get(f"{base}/page", headers=BOT) as resp:
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "60"
        assert await resp.text() == EXCLUDED_BODY
    async with session.head(f"{base}/page", headers=BOT) as resp:
        assert resp.status == 503
    async with session.get(f"{base}/healthz") as resp:
        assert (resp.status, await resp.text()) == (200, "ok\n")
    assert woken == []
    assert requests_of(interceptor, target) == (0, 0, 0)

    # A user's request still wakes it and is held until the workload is ready.
    user = asyncio.create_task(session.get(f"{base}/healthz/deep"))  # Exact: not excluded
    await until(lambda: requests_of(interceptor, target) == (1, 1, 1))
    assert woken == [target.key]
    async with session.get(f"{base}/", headers=BOT) as resp:  # still asleep: no effect
        assert resp.status == 503
    assert requests_of(interceptor, target) == (1, 1, 1)
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    (await user).release()

    # Awake: the bot is forwarded (passthrough), the health check still answered (Always),
    # and neither counts.
    seen = len(backend.requests)
    async with session.get(f"{base}/echo?from=bot", headers=BOT) as resp:
        assert resp.status == 200
        assert (await resp.json())["path"] == "/echo?from=bot"
    async with session.get(f"{base}/healthz") as resp:
        assert (resp.status, await resp.text()) == (200, "ok\n")
    assert len(backend.requests) == seen + 1
    assert requests_of(interceptor, target) == (1, 0, 0)
    assert woken == [target.key]
    text = await metrics(interceptor, session)
    assert value(text, EXEMPT, namespace="test", name="app", kind="static") == 5
    assert value(text, EXEMPT, namespace="test", name="app", kind="passthrough") == 1


async def test_a_refused_passthrough_is_answered_not_held(
    start_interceptor: StartInterceptor, session: aiohttp.ClientSession
) -> None:
    target = make_target(wakeExclusions=EXCLUSIONS)
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"*": target}))
    with socket.socket() as closed:  # an address nothing listens on
        closed.bind(("127.0.0.1", 0))
        addr = closed.getsockname()
    interceptor.set_endpoints({backend_key(target): [addr]})
    woken: list[str] = []
    interceptor.on_cold(lambda t: woken.append(t.key))
    base = f"http://127.0.0.1:{interceptor.proxy_port}"
    async with session.get(f"{base}/", headers=BOT) as resp:
        assert resp.status == 503
        assert await resp.text() == EXCLUDED_BODY
    assert woken == []
    assert requests_of(interceptor, target) == (0, 0, 0)


async def test_maintenance_answers_everything_and_forwards_nothing(
    start_interceptor: StartInterceptor, backend: Backend, session: aiohttp.ClientSession
) -> None:
    page = {"statusCode": 503, "headers": {"Content-Type": "text/html"}, "body": "<p>back soon</p>"}
    asleep = make_target(maintenance={"response": page}, wakeExclusions=EXCLUSIONS)
    awake = make_target("awake", "awake-svc", maintenance={})
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"asleep": asleep, "awake": awake}))
    interceptor.set_endpoints({backend_key(awake): [backend.addr]})
    woken: list[str] = []
    interceptor.on_cold(lambda t: woken.append(t.key))
    base = f"http://127.0.0.1:{interceptor.proxy_port}"
    for path, headers in (("/", {}), ("/healthz", {}), ("/x", BOT)):
        async with session.post(
            f"{base}{path}", data=b"body", headers={"Host": "asleep", **headers}
        ) as resp:
            assert resp.status == 503
            assert resp.headers["Content-Type"] == "text/html"
            assert resp.headers["Retry-After"] == "60"
            assert await resp.text() == "<p>back soon</p>"
        async with session.get(f"{base}{path}", headers={"Host": "awake", **headers}) as resp:
            assert resp.status == 503
            assert await resp.text() == MAINTENANCE_BODY
    assert woken == []
    assert backend.requests == []
    assert requests_of(interceptor, asleep) == requests_of(interceptor, awake) == (0, 0, 0)
    text = await metrics(interceptor, session)
    assert value(text, EXEMPT, namespace="test", name="app", kind="maintenance") == 3
    assert value(text, EXEMPT, namespace="test", name="awake", kind="maintenance") == 3
