"""Local mode end to end: real workload processes, real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import grpc
import pytest

from wakeway.interceptor.settings import InterceptorSettings
from wakeway.local.plan import RESTART_DELAY_MIN, Phase
from wakeway.local.process import free_port
from wakeway.local.runner import LocalRunner

pytestmark = pytest.mark.component

APP = Path(__file__).with_name("local_app.py")
GRPC_APP = Path(__file__).with_name("local_grpc_app.py")


def config(
    name: str = "app",
    *,
    args: str = "",
    scaledown: int = 60,
    extra_spec: str = "",
    startup_timeout: str = "20s",
    port: int | None = None,
    app: Path = APP,
    app_protocol: str | None = None,
) -> str:
    argv = ", ".join(
        f'"{a}"' for a in [sys.executable, str(app), "--port", "{port}", *args.split()]
    )
    return f"""\
apiVersion: local.wakeway.dev/v1alpha1
kind: LocalWorkload
metadata: {{name: {name}}}
spec:
  command: [{argv}]
  startupTimeout: {startup_timeout}
  stopGracePeriod: 5s
{"" if port is None else f"  port: {port}"}
{"" if app_protocol is None else f"  appProtocol: {app_protocol}"}
---
apiVersion: http.keda.sh/v1alpha1
kind: HTTPScaledObject
metadata: {{name: {name}}}
spec:
  hosts: [{name}.localhost]
  scaleTargetRef: {{apiVersion: local.wakeway.dev/v1alpha1, kind: LocalWorkload, name: {name}}}
  scaledownPeriod: {scaledown}
{extra_spec}"""


SETTINGS = InterceptorSettings(
    listen_host="127.0.0.1", listen_port=0, admin_host="127.0.0.1", admin_port=0, condition_wait=20
)


class Harness:
    def __init__(self, runner: LocalRunner, session: aiohttp.ClientSession) -> None:
        self.runner = runner
        self.session = session

    async def get(self, host: str, path: str = "/", **headers: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.runner.interceptor.proxy_port}{path}"
        async with self.session.get(url, headers={"Host": host, **headers}) as resp:
            return resp.status, await resp.text()

    async def until(self, check: Callable[[], bool], within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)


Start = Callable[[str], Awaitable[Harness]]


def _raw(message: bytes) -> bytes:
    """gRPC messages as raw bytes (no generated code)."""
    return message


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Start]:
    runners: list[LocalRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def start(text: str) -> Harness:
        path = tmp_path / "config.yaml"
        path.write_text(text)
        runner = LocalRunner([path], SETTINGS)
        await runner.start()
        runners.append(runner)
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        sessions.append(session)
        return Harness(runner, session)

    yield start
    for session in sessions:
        await session.close()
    for runner in runners:
        await asyncio.wait_for(runner.stop(), 30)


async def test_200_concurrent_requests_to_a_cold_workload_start_it_once(
    local: Start,
) -> None:
    h = await local(config(args="--startup-delay 0.3"))
    results = await asyncio.gather(*(h.get("app.localhost", f"/r{i}") for i in range(200)))
    assert [status for status, _ in results] == [200] * 200
    pids = {body.split('"pid": ')[1].split(",")[0] for _, body in results}
    assert len(pids) == 1, pids
    slot = h.runner.slots["default/app"]
    assert slot.starts == 1
    assert slot.phase is Phase.READY


async def test_quiet_period_stops_the_workload_and_next_request_restarts_it(
    local: Start,
) -> None:
    h = await local(config(scaledown=1))
    status, first = await h.get("app.localhost")
    assert status == 200
    slot = h.runner.slots["default/app"]
    process = slot.process
    assert process is not None
    await h.until(lambda: slot.phase is Phase.STOPPED)
    assert process.exited
    status, second = await h.get("app.localhost")
    assert status == 200
    assert first != second  # another pid
    assert slot.starts == 2


async def test_steady_short_requests_keep_it_awake_one_wake_and_one_sleep(
    local: Start,
) -> None:
    """50 req/s of requests far shorter than the count batch, for 5x scaledownPeriod: one wake,
    no sleep while the traffic runs, then one sleep a scaledownPeriod after the last one."""
    h = await local(config(scaledown=1))
    slot = h.runner.slots["default/app"]
    first = last_end = 0.0
    pids = set()
    for i in range(300):  # 50 per second for 6 s, bounded
        began = time.monotonic()
        status, body = await h.get("app.localhost", f"/r{i}")
        assert status == 200
        pids.add(body)
        first = first or began
        last_end = time.monotonic()
        # Never asleep, never even on its way there, while the traffic runs.
        assert slot.phase is Phase.READY, f"request {i}: {slot.phase}"
        await asyncio.sleep(max(0.0, began + 0.02 - time.monotonic()))
    assert last_end - first >= 5.0
    assert slot.starts == 1
    assert len({body.split('"pid": ')[1].split(",")[0] for body in pids}) == 1
    await h.until(lambda: slot.phase is Phase.STOPPED)
    assert time.monotonic() - last_end >= 1.0  # the quiet period began with the last request
    assert slot.starts == 1


@pytest.mark.parametrize("kind", ["sse", "websocket", "grpc"])
async def test_an_open_stream_keeps_it_awake_and_the_quiet_starts_when_it_ends(
    local: Start, kind: str
) -> None:
    """An SSE response, a WebSocket or a server-streaming gRPC call is in flight for its whole
    life: held open across 3x scaledownPeriod the workload stays up; the quiet period starts
    when the stream ends."""
    if kind == "grpc":
        h = await local(config(scaledown=1, app=GRPC_APP, app_protocol="grpc"))
    else:
        h = await local(config(scaledown=1))
    slot = h.runner.slots["default/app"]
    url = f"http://127.0.0.1:{h.runner.interceptor.proxy_port}"
    headers = {"Host": "app.localhost"}
    events = 0
    if kind == "sse":
        async with h.session.get(f"{url}/events", headers=headers) as resp:
            assert resp.status == 200
            began = time.monotonic()
            async for line in resp.content:  # events arrive every 0.1 s
                events += line.startswith(b"data:")
                assert slot.phase is Phase.READY
                if time.monotonic() - began >= 3.0:
                    break
            closed = time.monotonic()
    elif kind == "grpc":  # 35 ticks 0.1 s apart: about 3.5 s on one call
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{h.runner.interceptor.proxy_port}",
            options=[("grpc.default_authority", "app.localhost")],
        )
        async with channel:
            tick = channel.unary_stream("/wakeway.test.Ticks/Tick", _raw, _raw)
            began = time.monotonic()
            async for message in tick(b"35", timeout=20):
                assert message == b"tick"
                events += 1
                assert slot.phase is Phase.READY
            assert time.monotonic() - began >= 3.0
            closed = time.monotonic()
    else:
        async with h.session.ws_connect(f"{url}/ws", headers=headers) as ws:
            began = time.monotonic()
            while time.monotonic() - began < 3.0:
                await ws.send_str("ping")  # the app drops them; the interceptor relays them
                assert slot.phase is Phase.READY
                await asyncio.sleep(0.1)
                events += 1
            closed = time.monotonic()
    assert events >= 20
    assert slot.starts == 1
    await h.until(lambda: slot.phase is Phase.STOPPED)
    assert time.monotonic() - closed >= 1.0
    assert slot.starts == 1


async def test_request_while_stopping_is_held_and_served_by_the_next_start(
    local: Start,
) -> None:
    h = await local(config(scaledown=1, args="--term-delay 1.0"))
    status, first = await h.get("app.localhost")
    assert status == 200
    slot = h.runner.slots["default/app"]
    await h.until(lambda: slot.phase is Phase.STOPPING)
    request = asyncio.create_task(h.get("app.localhost"))
    await h.until(lambda: h.runner.interceptor.counts()["default/app"].in_flight == 1)
    assert slot.phase is Phase.STOPPING  # it arrived while the workload was stopping (1 s)
    status, second = await request
    assert status == 200
    assert first != second
    assert slot.starts == 2


async def test_crash_during_start_answers_held_requests_with_502(
    local: Start,
) -> None:
    h = await local(config(args="--crash"))
    results = await asyncio.gather(*(h.get("app.localhost") for _ in range(5)))
    for status, body in results:
        assert status == 502
        assert "failed to start" in body
        assert "exited with code 3" in body
    assert h.runner.slots["default/app"].phase is Phase.STOPPED


async def test_crash_after_ready_is_restarted_by_the_next_request(
    local: Start,
) -> None:
    h = await local(config())
    status, first = await h.get("app.localhost")
    assert status == 200
    slot = h.runner.slots["default/app"]
    assert slot.process is not None
    slot.process.kill_now()
    await h.until(lambda: slot.phase is Phase.STOPPED)
    status, second = await h.get("app.localhost")
    assert status == 200
    assert first != second


async def test_reload_swaps_config_and_a_bad_reload_keeps_the_old(
    local: Start, tmp_path: Path
) -> None:
    h = await local(config())
    assert (await h.get("app.localhost"))[0] == 200
    path = tmp_path / "config.yaml"
    # A slow request is in flight while the configuration changes.
    slow = asyncio.create_task(h.get("app.localhost", "/slow", **{"X-Delay": "0.5"}))
    await h.until(lambda: h.runner.interceptor.counts()["default/app"].in_flight == 1)
    path.write_text(config() + "---\n" + config("other"))
    assert h.runner.reload()
    assert (await slow)[0] == 200
    assert (await h.get("other.localhost"))[0] == 200
    path.write_text(config().replace("scaledownPeriod: 60", "scaledownPeriod: later"))
    assert not h.runner.reload()
    assert (await h.get("other.localhost"))[0] == 200  # the old configuration still serves


async def test_a_workload_that_keeps_crashing_is_restarted_with_backoff(
    local: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """replicas.min: 1 and a command that exits at once: restarts wait 0.5 s, 1 s, 2 s, ...,
    one line each, instead of a respawn every few milliseconds."""
    caplog.set_level(logging.ERROR, logger="wakeway.local")
    h = await local(config(args="--crash", extra_spec="  replicas: {min: 1}"))

    def failures() -> list[float]:
        return [r.created for r in caplog.records if r.getMessage().startswith("wake default/app")]

    await h.until(lambda: len(failures()) >= 3)
    first, second, third = failures()[:3]
    assert second - first >= RESTART_DELAY_MIN
    assert third - second >= 2 * RESTART_DELAY_MIN
    assert "(2 in a row; next start in 1.0s at the earliest)" in caplog.text


async def test_a_reload_that_removes_a_target_answers_its_held_requests_at_once(
    local: Start, tmp_path: Path
) -> None:
    # A start far longer than every wait below (its startupTimeout, 20 s, ends it otherwise).
    h = await local(config(args="--startup-delay 60") + "---\n" + config("other"))
    slot = h.runner.slots["default/app"]
    held = asyncio.create_task(h.get("app.localhost"))
    await h.until(lambda: "default/app" in h.runner.interceptor.counts())
    await h.until(lambda: h.runner.interceptor.counts()["default/app"].held == 1)
    (tmp_path / "config.yaml").write_text(config("other"))
    assert h.runner.reload()
    status, body = await asyncio.wait_for(held, 10)  # not conditionWait (20 s) later
    assert status == 503
    assert body == "default/app was removed from the configuration while this request waited\n"
    await h.until(lambda: "default/app" not in h.runner.slots, within=15)  # start cancelled
    assert slot.starts == 0


async def test_a_reload_during_a_start_replaces_the_workload_once_idle(
    local: Start, tmp_path: Path
) -> None:
    h = await local(config(args="--startup-delay 1 --tag v1"))
    slot = h.runner.slots["default/app"]
    first = asyncio.create_task(h.get("app.localhost"))
    await h.until(lambda: slot.phase is Phase.STARTING)
    (tmp_path / "config.yaml").write_text(config(args="--tag v2"))
    assert h.runner.reload()
    status, body = await first
    assert (status, json.loads(body)["tag"]) == (200, "v1")  # the start under way serves it
    await h.until(lambda: slot.phase is Phase.STOPPED)  # replaced once idle
    status, body = await h.get("app.localhost")
    assert (status, json.loads(body)["tag"]) == (200, "v2")


def local_command(path: Path, port: int) -> list[str]:
    """``wakeway local`` on ``path``, listening on 127.0.0.1:``port``, as its own process."""
    listen, admin = f"127.0.0.1:{port}", "127.0.0.1:0"
    return [
        sys.executable,
        "-m",
        "wakeway.cli",
        "local",
        str(path),
        "--listen",
        listen,
        "--admin",
        admin,
    ]


def test_config_error_is_reported_and_nothing_starts(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(config().replace("hosts: [app.localhost]", "hosts: [not a host]"))
    proc = subprocess.run(
        local_command(path, 0),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert f"{path} document 2 (HTTPScaledObject app): spec.hosts[0]:" in proc.stderr
    assert "nothing was started" in proc.stderr


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_workloads_die_with_a_killed_local_mode(tmp_path: Path) -> None:
    """SIGKILL leaves local mode no chance to stop anything: its workload and the workload's
    own child must die anyway, not linger to answer for a later run."""
    path = tmp_path / "config.yaml"
    path.write_text(config(args="--child"))
    port = free_port()
    with (tmp_path / "local.log").open("w") as log:
        proc = subprocess.Popen(
            local_command(path, port),
            stdout=log,
            stderr=log,
        )
    pids: list[int] = []
    try:

        def listening() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        assert _wait_for(listening, 30), (tmp_path / "local.log").read_text()
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        client.request("GET", "/", headers={"Host": "app.localhost"})
        answer = client.getresponse()
        assert answer.status == 200
        body = json.loads(answer.read())
        client.close()
        pids = [body["pid"], body["child"]]
        assert all(_alive(pid) for pid in pids)
        proc.kill()
        proc.wait(10)
        assert _wait_for(lambda: not any(_alive(pid) for pid in pids), 10), [
            pid for pid in pids if _alive(pid)
        ]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in pids:  # left over when the test fails
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


async def test_a_fixed_port_taken_by_another_process_fails_the_start_with_502(
    local: Start,
) -> None:
    """Something else listens on the workload's port (an orphan of an earlier run, say): its
    answers must not pass for the workload's readiness or its responses."""
    foreign = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = foreign.sockets[0].getsockname()[1]
    try:
        h = await local(config(port=port))
        status, body = await h.get("app.localhost")
        assert status == 502
        assert f"port 127.0.0.1:{port} is already in use by another process" in body
        assert h.runner.slots["default/app"].starts == 0
    finally:
        foreign.close()


async def test_workload_output_is_prefixed_with_its_name(
    local: Start, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    h = await local(config(args="--say hello-from-app"))
    assert (await h.get("app.localhost", "/"))[0] == 200
    seen: list[bytes] = []

    def said() -> bool:  # on its stdout and its stderr
        seen.append(capsysbinary.readouterr().out)
        return b"(stderr)" in b"".join(seen)

    await h.until(said, within=10)
    lines = [line for line in b"".join(seen).splitlines() if b"hello-from-app" in line]
    assert lines == [b"app | hello-from-app", b"app | hello-from-app (stderr)"]


async def test_debug_lines_say_what_changed_and_a_summary_starts(
    local: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wakeway")
    h = await local(config())
    assert (await h.get("app.localhost", "/cold"))[0] == 200
    text = caplog.text
    assert "1 HTTPScaledObjects, 0 HTTPRoutes, 1 LocalWorkloads; access log off" in text
    assert "routing table swapped: 1 targets, 0 problems, 0 conflicts; added: default/app" in text
    assert "default/app: holding GET /cold for backend" in text
    assert re.search(r"endpoints of \S+: 1 ready \(127\.0\.0\.1:\d+\); added", text), text
    assert re.search(r"default/app: released GET /cold after [\d.]+ s to 127\.0\.0\.1:\d+", text)
