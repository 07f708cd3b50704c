"""Proxy benchmark: direct vs wakeway vs nginx-as-proxy, same backend, one run.

    .venv/bin/python loadtest/bench_proxy.py [--runs 3] [--duration 10] [--threads 2]

Installs Debian's nginx and wrk when missing (apt-get, as root), starts nginx serving a small
static file on loopback as the backend, a wakeway interceptor and an nginx reverse proxy in
front of it, then measures:

- uncapped throughput: ``wrk -t{threads} -c64`` for each path, interleaved, ``--runs`` times;
  medians, plus the interceptor's CPU time per request;
- latency at a fixed 1000 req/s: wrk2 is not packaged by Debian and wrk is closed-loop, so a
  small open-loop generator here sends each request at its scheduled time over a pool of
  keep-alive connections (uvloop, raw protocol, perf_counter timing), for each path in turn.

Everything listens on 127.0.0.1; every load loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import uvloop

HERE = Path(__file__).resolve().parent
BODY = b"x" * 100
RATE = 1000
CONNECTIONS = 64
LATENCY_CONNECTIONS = 256


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ensure_tools() -> None:
    missing = [pkg for pkg, exe in (("nginx", "nginx"), ("wrk", "wrk")) if not find(exe)]
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


def find(exe: str) -> str | None:
    return shutil.which(exe) or next(
        (p for p in (f"/usr/sbin/{exe}", f"/usr/bin/{exe}") if os.path.exists(p)), None
    )


NGINX_CONF = """
worker_processes 1;
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
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ root {dir}/www; }}
    }}
"""

PROXY_BODY = """
    upstream backend {{ server 127.0.0.1:{backend}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
"""


def start_nginx(workdir: Path, name: str, body: str) -> subprocess.Popen[bytes]:
    conf = workdir / f"nginx-{name}.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, name=name, body=body))
    nginx = find("nginx")
    assert nginx is not None
    return subprocess.Popen([nginx, "-c", str(conf), "-p", str(workdir)])


def wait_port(port: int, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def wrk(port: int, duration: float, threads: int) -> float:
    exe = find("wrk")
    assert exe is not None
    out = subprocess.run(
        [
            exe,
            f"-t{threads}",
            f"-c{CONNECTIONS}",
            f"-d{round(duration)}s",
            f"http://127.0.0.1:{port}/b",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=duration + 30,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error responses on port {port}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


# -- fixed-rate, open-loop latency ---------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """A keep-alive client connection expecting Content-Length responses of a known size."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= self.expect and self.waiter is not None and not self.waiter.done():
            if not self.buf.startswith(b"HTTP/1.1 200"):
                self.waiter.set_exception(RuntimeError(bytes(self.buf[:80]).decode()))
            else:
                self.waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed"))


async def _response_size(port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /b HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    writer.close()
    return len(head) + length


async def fixed_rate(port: int, rate: int, seconds: float) -> list[float]:
    """Latencies (s) of ``rate * seconds`` requests sent on an open-loop schedule.

    Each latency runs from the moment the request is written to the moment its response is
    complete. At this rate nothing queues in front of the servers (a connection is always
    free), so timing from the write instead of the schedule only drops the generator's own
    scheduling jitter, which would otherwise be shared noise on every path.
    """
    loop = asyncio.get_running_loop()
    # Response heads differ in length between servers (Date, Server...), but not between
    # responses of one server, so one probe gives the byte count to wait for.
    size = await _response_size(port)
    idle: list[_Conn] = []
    for _ in range(LATENCY_CONNECTIONS):
        _, proto = await loop.create_connection(lambda: _Conn(size), "127.0.0.1", port)
        idle.append(proto)
    request = b"GET /b HTTP/1.1\r\nHost: bench\r\n\r\n"
    latencies: list[float] = []
    total = int(rate * seconds)
    clock = time.perf_counter  # the loop's clock has millisecond resolution on uvloop
    start = clock() + 0.05

    async def one(conn: _Conn) -> None:
        conn.buf.clear()
        conn.waiter = loop.create_future()
        assert conn.transport is not None
        sent = clock()
        conn.transport.write(request)
        await conn.waiter
        latencies.append(clock() - sent)
        idle.append(conn)

    tasks: list[asyncio.Task[None]] = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        if not idle:
            raise RuntimeError(f"all {LATENCY_CONNECTIONS} connections busy at {rate} req/s")
        tasks.append(asyncio.create_task(one(idle.pop())))
    async with asyncio.timeout(30):
        await asyncio.gather(*tasks)
    for conn in idle:
        assert conn.transport is not None
        conn.transport.close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- runner --------------------------------------------------------------------------------------


@dataclass
class Paths:
    direct: int
    wakeway: int
    nginx: int


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()
    if args.runs < 1 or args.runs > 10 or args.duration > 60 or args.latency_seconds > 60:
        parser.error("keep it bounded: runs 1..10, durations up to 60 s")
    ensure_tools()

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="wakeway-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as an unprivileged user
        (work / "www").mkdir()
        (work / "www" / "b").write_bytes(BODY)
        ports = Paths(free_port(), free_port(), free_port())
        admin = free_port()
        try:
            procs.append(
                start_nginx(work, "backend", BACKEND_BODY.format(port=ports.direct, dir=work))
            )
            wait_port(ports.direct)
            procs.append(
                start_nginx(
                    work, "proxy", PROXY_BODY.format(port=ports.nginx, backend=ports.direct)
                )
            )
            wakeway = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "bench_proxy_server.py"),
                    str(ports.wakeway),
                    str(admin),
                    str(ports.direct),
                ],
                stdout=subprocess.PIPE,
            )
            procs.append(wakeway)
            assert wakeway.stdout is not None
            if wakeway.stdout.readline().strip() != b"ready":
                raise RuntimeError("the wakeway interceptor did not start")
            for port in (ports.nginx, ports.wakeway):
                wait_port(port)
            return run(args, ports, wakeway.pid)
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def run(args: argparse.Namespace, ports: Paths, wakeway: int) -> int:
    names = ("direct", "wakeway", "nginx")
    print(f"warm-up ({names})", flush=True)
    for name in names:
        wrk(getattr(ports, name), 2, args.threads)
    results: dict[str, list[float]] = {n: [] for n in names}
    cpu_per_request: list[float] = []
    for i in range(args.runs):
        for name in names:
            cpu0 = cpu_seconds(wakeway)
            rps = wrk(getattr(ports, name), args.duration, args.threads)
            if name == "wakeway":
                cpu = cpu_seconds(wakeway) - cpu0
                cpu_per_request.append(cpu / (rps * args.duration))
            results[name].append(rps)
            print(f"run {i + 1}: {name:8s} {rps:10.0f} req/s", flush=True)
    med = {n: statistics.median(v) for n, v in results.items()}

    latencies: dict[str, list[float]] = {}
    for name in names:
        latencies[name] = uvloop.run(fixed_rate(getattr(ports, name), RATE, args.latency_seconds))
    p = {
        n: (percentile(v, 0.5) * 1000, percentile(v, 0.99) * 1000, max(v) * 1000)
        for n, v in latencies.items()
    }

    print()
    wrk_args = f"-t{args.threads} -c{CONNECTIONS} -d{args.duration:g}s"
    print(f"uncapped, wrk {wrk_args}, median of {args.runs}:")
    for name in names:
        print(f"  {name:8s} {med[name]:10.0f} req/s   runs: {[round(x) for x in results[name]]}")
    cpu_us = statistics.median(cpu_per_request) * 1e6
    print(f"  wakeway CPU per request: {cpu_us:.1f} us")
    print(f"fixed rate {RATE} req/s for {args.latency_seconds:g} s (open loop):")
    for name in names:
        p50, p99, worst = p[name]
        print(f"  {name:8s} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms   max {worst:6.3f} ms")
    ratio_nginx = med["wakeway"] / med["nginx"]
    ratio_direct = med["wakeway"] / med["direct"]
    added_p99 = p["wakeway"][1] - p["direct"][1]
    print("ratios:")
    print(f"  wakeway/nginx throughput  {ratio_nginx:.2f}  (goal >= 0.5)")
    print(f"  wakeway/direct throughput {ratio_direct:.2f}")
    print(f"  nginx/direct throughput   {med['nginx'] / med['direct']:.2f}")
    print(
        f"  added p99 at {RATE} req/s: wakeway {added_p99:+.3f} ms (goal <= 2 ms), "
        f"nginx {p['nginx'][1] - p['direct'][1]:+.3f} ms"
    )
    ok = ratio_nginx >= 0.5 and added_p99 <= 2.0
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
