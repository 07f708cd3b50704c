"""``wakeway local --workers 2``: a cold start through the worker
processes, and SIGTERM draining both of them while the count stream keeps reporting."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.component.test_cli_local import CONFIG, launch

pytestmark = pytest.mark.component

WORKER = "wakeway.interceptor.worker"


def get(port: int, host: str, delay: float = 0.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/", headers={"Host": host, "X-Delay": str(delay)})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def until(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def workers_of(pid: int) -> list[int]:
    """The worker processes among ``pid``'s children."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if WORKER in Path(f"/proc/{c}/cmdline").read_text()]


def serving(worker: int, port: int) -> int:
    """Client connections ``worker`` has open on the proxy port (from /proc: its socket
    inodes, and the established IPv4 connections with that local port)."""
    inodes = set()
    for fd in Path(f"/proc/{worker}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    n = 0
    for line in Path(f"/proc/{worker}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "01" and int(local.split(":")[1], 16) == port and inode in inodes:
            n += 1
    return n


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


class CountLines(threading.Thread):
    """Reads the admin port's ``/counts`` until the stream ends."""

    def __init__(self, admin: int) -> None:
        super().__init__(daemon=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=60)
        self.conn.request("GET", "/counts")
        self.resp = self.conn.getresponse()
        self.lines: list[dict[str, Any]] = []

    def run(self) -> None:
        for raw in self.resp:
            self.lines.append(json.loads(raw))

    def in_flight(self) -> list[int]:
        return [t["inFlight"] for line in self.lines for t in line.get("targets", {}).values()]


def test_sigterm_drains_both_workers(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    args = ["local", str(config), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]
    args += ["--workers", "2"]
    with launch(args, tmp_path / "local.log") as (proc, listening):
        proxy, admin = int(listening["port"]), int(listening["admin_port"])
        workers = workers_of(proc.pid)
        assert len(workers) == 2
        assert get(proxy, "app.localhost")[0] == 200  # a cold start through the workers
        stream = CountLines(admin)
        stream.start()
        with ThreadPoolExecutor(32) as pool:
            slow: list[Future[tuple[int, bytes]]] = []
            while not all(serving(w, proxy) for w in workers):
                assert len(slow) < 32, "one worker took every connection"
                slow.append(pool.submit(get, proxy, "app.localhost", 1.5))
                until(lambda: sum(serving(w, proxy) for w in workers) == len(slow))
            until(lambda: bool(stream.in_flight()) and stream.in_flight()[-1] == len(slow))
            proc.send_signal(signal.SIGTERM)
            assert [f.result()[0] for f in slow] == [200] * len(slow)
        assert proc.wait(30) == 0
        for worker in workers:
            assert not alive(worker)
        stream.join(10)
        assert stream.in_flight()[-1] == 0  # reported until the last worker was done
