"""Load generation shared by the proxy benchmarks (bench_proxy.py, bench_peer.py).

- ``wrk``: closed-loop, uncapped throughput (Debian's wrk, installed by ``ensure_tools``);
- ``open_loop``: a small open-loop generator for latency at a fixed rate (wrk2 is not packaged
  by Debian and wrk is closed-loop): each request is sent at its scheduled time over a pool of
  keep-alive connections (uvloop, raw protocol, perf_counter timing);
- nginx as a static backend or as a reverse proxy, and small process/port helpers.

Run as a script, ``open_loop`` prints its result as JSON, so a benchmark can run the generator
in another process (for example inside a network namespace with ``ip netns exec``):

    python -m loadtest.loadgen --address 127.0.0.1 --port 8080 --rate 1000 --seconds 10 \
        [--host NAME ...] [--connections 256]

Every load loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import uvloop

CONNECTIONS = 64
LATENCY_CONNECTIONS = 256


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (an interceptor's workers), from /proc."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (an interceptor with its workers)."""
    total = cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(child)
    return total


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every live process in a process group (a server and its workers)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def find(exe: str) -> str | None:
    return shutil.which(exe) or next(
        (p for p in (f"/usr/sbin/{exe}", f"/usr/bin/{exe}") if os.path.exists(p)), None
    )


def ensure_tools(*extra: tuple[str, str]) -> None:
    """Installs Debian's nginx and wrk (and ``extra`` (package, executable) pairs) if missing."""
    wanted = (("nginx", "nginx"), ("wrk", "wrk"), *extra)
    missing = [pkg for pkg, exe in wanted if not find(exe)]
    if not missing:
        return
    print(f"installing {', '.join(missing)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


# -- nginx ---------------------------------------------------------------------------------------

NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {dir}/nginx-{name}.pid;
error_log {dir}/nginx-{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body-{name};
    proxy_temp_path {dir}/proxy-{name};
    fastcgi_temp_path {dir}/fcgi-{name};
    uwsgi_temp_path {dir}/uwsgi-{name};
    scgi_temp_path {dir}/scgi-{name};
    keepalive_requests 1000000;
    {body}
}}
"""

BACKEND_BODY = """
    server {{
        listen {address}:{port} backlog=4096;
        location / {{ root {dir}/www; }}
    }}
"""

PROXY_BODY = """
    upstream backend {{ server {backend_address}:{backend}; keepalive 128; }}
    server {{
        listen {address}:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
"""


def nginx_config(workdir: Path, name: str, body: str, workers: int = 1) -> Path:
    conf = workdir / f"nginx-{name}.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, name=name, body=body, workers=workers))
    return conf


def nginx_argv(workdir: Path, conf: Path) -> list[str]:
    nginx = find("nginx")
    assert nginx is not None
    return [nginx, "-c", str(conf), "-p", str(workdir)]


def start_nginx(workdir: Path, name: str, body: str, workers: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(nginx_argv(workdir, nginx_config(workdir, name, body, workers)))


def wait_port(port: int, within: float = 10.0, address: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {address}:{port}")


# -- wrk: uncapped, closed loop ------------------------------------------------------------------


def wrk_argv(
    url: str,
    duration: float,
    threads: int,
    connections: int = CONNECTIONS,
    host: str | None = None,
) -> list[str]:
    exe = find("wrk")
    assert exe is not None
    argv = [exe, f"-t{threads}", f"-c{connections}", f"-d{round(duration)}s"]
    if host is not None:
        argv += ["-H", f"Host: {host}"]
    return [*argv, url]


def wrk_result(out: str, what: str) -> float:
    """Requests/s from wrk's report; any error response or socket error is a failure."""
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses on {what}:\n{out}")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock and any(int(n) for n in sock.groups()):
        raise RuntimeError(f"wrk saw socket errors on {what}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def wrk(port: int, duration: float, threads: int) -> float:
    """Uncapped throughput against 127.0.0.1:port/b."""
    argv = wrk_argv(f"http://127.0.0.1:{port}/b", duration, threads)
    out = subprocess.run(
        argv, check=True, capture_output=True, text=True, timeout=duration + 30
    ).stdout
    return wrk_result(out, f"port {port}")


# -- fixed-rate, open loop -----------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """A keep-alive client connection that reads one Content-Length response at a time."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = -1  # bytes of the whole response, once its head is in
        self.waiter: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", self.buf[:end])
            self.need = end + 4 + (int(length.group(1)) if length else 0)
        if len(self.buf) >= self.need and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(int(self.buf[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed"))


@dataclass
class OpenLoopResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: int = 0  # non-200 answers, broken connections, requests not done in time
    sent: int = 0
    reconnects: int = 0  # idle connections the server had closed, replaced


async def open_loop(
    address: str,
    port: int,
    rate: float,
    seconds: float,
    hosts: list[str] | None = None,
    connections: int = LATENCY_CONNECTIONS,
    path: str = "/b",
) -> OpenLoopResult:
    """``rate * seconds`` requests on an open-loop schedule, Host cycling through ``hosts``.

    Each latency runs from the moment the request is written to the moment its response is
    complete. At these rates nothing queues in front of the servers (a connection is always
    free), so timing from the write instead of the schedule only drops the generator's own
    scheduling jitter, which would otherwise be shared noise on every path. If every connection
    is busy when a request is due, that request counts as an error; a connection the server
    closed while idle is replaced before its next request.
    """
    loop = asyncio.get_running_loop()
    requests = [f"GET {path} HTTP/1.1\r\nHost: {h}\r\n\r\n".encode() for h in (hosts or ["bench"])]
    idle: list[_Conn] = []
    for _ in range(connections):
        _, proto = await loop.create_connection(_Conn, address, port)
        idle.append(proto)
    result = OpenLoopResult()
    total = int(rate * seconds)
    clock = time.perf_counter  # the loop's clock has millisecond resolution on uvloop
    start = clock() + 0.05

    async def one(conn: _Conn, request: bytes) -> None:
        if conn.transport is None or conn.transport.is_closing():
            # The server closed this idle keep-alive connection (as HTTP allows): a new one.
            result.reconnects += 1
            try:
                _, conn = await loop.create_connection(_Conn, address, port)
            except OSError:
                result.errors += 1
                return
        conn.buf.clear()
        conn.need = -1
        conn.waiter = loop.create_future()
        assert conn.transport is not None
        sent = clock()
        conn.transport.write(request)
        try:
            status = await conn.waiter
        except (OSError, ConnectionError):
            result.errors += 1
            return
        if status == 200:
            result.latencies.append(clock() - sent)
        else:
            result.errors += 1
        idle.append(conn)

    tasks: list[asyncio.Task[None]] = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        result.sent += 1
        if not idle:
            result.errors += 1
            continue
        tasks.append(asyncio.create_task(one(idle.pop(), requests[i % len(requests)])))
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    except TimeoutError:
        result.errors += sum(1 for t in tasks if not t.done())
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return result


async def fixed_rate(port: int, rate: int, seconds: float) -> list[float]:
    """Latencies (s) at a fixed rate against 127.0.0.1:port/b; any error is a failure."""
    result = await open_loop("127.0.0.1", port, rate, seconds)
    if result.errors:
        raise RuntimeError(f"{result.errors} of {result.sent} requests failed on port {port}")
    return result.latencies


def main() -> None:
    parser = argparse.ArgumentParser(description="open-loop fixed-rate load; prints JSON")
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--host", action="append", help="Host header (repeat to cycle)")
    parser.add_argument("--hosts-file", type=Path, help="one Host header per line")
    parser.add_argument("--connections", type=int, default=LATENCY_CONNECTIONS)
    args = parser.parse_args()
    if args.seconds > 120 or args.rate > 100_000:
        parser.error("keep it bounded: up to 120 s and 100k req/s")
    hosts = list(args.host or [])
    if args.hosts_file:
        hosts += [h for h in args.hosts_file.read_text().split() if h]
    result = uvloop.run(
        open_loop(args.address, args.port, args.rate, args.seconds, hosts or None, args.connections)
    )
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
