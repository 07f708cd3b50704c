"""The interceptor's JSON access log: one line per finished request, written off the loop."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator

import aiohttp
import pytest

from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
)
from wakeway.model.settings import format_address
from wakeway.observe import accesslog

pytestmark = pytest.mark.component


@pytest.fixture
def access_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    accesslog.enable(out)
    try:
        yield out
    finally:
        accesslog.disable()


async def test_each_finished_request_is_one_json_line(
    access_log: io.StringIO,
    start_interceptor: StartInterceptor,
    backend: Backend,
    session: aiohttp.ClientSession,
) -> None:
    target = make_target()
    interceptor = await start_interceptor()
    interceptor.set_router(HostRouter({"app.example": target}))
    interceptor.set_endpoints({backend_key(target): [backend.addr]})
    base = f"http://127.0.0.1:{interceptor.proxy_port}"
    host = {"Host": "app.example"}
    async with session.get(f"{base}/echo?token=secret", headers=host) as resp:
        body = await resp.read()
    async with session.post(f"{base}/echo", headers=host, data=b"x") as resp:
        assert resp.status == 200
    async with session.get(f"{base}/nowhere", headers={"Host": "other.example"}) as resp:
        assert resp.status == 404
        not_found = await resp.read()
    accesslog.disable()  # writes what is queued

    lines = [json.loads(line) for line in access_log.getvalue().splitlines()]
    assert [(e["method"], e["path"], e["status"]) for e in lines] == [
        ("GET", "/echo", 200),  # no query string: it may carry secrets
        ("POST", "/echo", 200),
        ("GET", "/nowhere", 404),
    ]
    first, _, missed = lines
    assert set(first) == {
        "time", "method", "host", "path", "status", "duration", "bytes",
        "namespace", "name", "cold", "upstream",
    }  # fmt: skip
    assert (first["host"], first["namespace"], first["name"]) == ("app.example", "test", "app")
    assert first["bytes"] == len(body)
    assert first["upstream"] == format_address(backend.addr)
    assert first["cold"] is False
    assert 0 < first["duration"] < 60
    assert first["time"].endswith("+00:00")
    assert (missed["namespace"], missed["name"], missed["upstream"]) == ("", "", None)
    assert missed["bytes"] == len(not_found)


def test_a_full_queue_drops_entries_and_counts_them() -> None:
    class Stuck(io.StringIO):
        def write(self, s: str) -> int:
            gate.wait(5)
            return super().write(s)

    gate = threading.Event()
    out = Stuck()
    log = accesslog.AccessLog(out, max_pending=1)
    entry: accesslog.Entry = (0.0, b"GET", None, b"/", 200, 0.001, 0, "", False, None)
    for _ in range(5):
        log.record(entry)
    assert 3 <= log.dropped <= 4  # one being written (perhaps), one queued, the rest dropped
    gate.set()
    log.close()
    assert len(out.getvalue().splitlines()) == 5 - log.dropped


def test_the_setting_is_off_by_default_and_read_from_the_environment() -> None:
    from wakeway.interceptor.settings import settings_from_env

    assert settings_from_env({}).access_log is False
    assert settings_from_env({"WAKEWAY_INTERCEPTOR_ACCESS_LOG": "true"}).access_log is True
