"""Memory for held requests: RSS of an interceptor holding N requests for a cold target.

    .venv/bin/python -m loadtest.held_rss [--requests 10000]

Starts the interceptor (bench_proxy_server.py, no backend endpoint, so every request is held),
opens N client connections to it on 127.0.0.1, each sending one GET, waits until the interceptor
reports N held requests, and prints its RSS before and after, and the difference per request.
The client side needs N file descriptors too: the soft limit is raised to the hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import time
from pathlib import Path

import uvloop

from loadtest.bench_proxy_server import spawn_interceptor


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def held_count(admin_port: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", admin_port)
    writer.write(b"GET /counts HTTP/1.1\r\nHost: admin\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    # chunked NDJSON: the first chunk carries the snapshot line
    await reader.readline()
    line = await reader.readline()
    writer.close()
    targets = json.loads(line)["targets"]
    return int(targets.get("bench/bench", {}).get("held", 0))


async def hold(n: int, proxy_port: int, admin_port: int, pid: int) -> None:
    before = rss_bytes(pid)
    writers: list[asyncio.StreamWriter] = []
    request = b"GET /held HTTP/1.1\r\nHost: bench\r\nUser-Agent: held-rss\r\nAccept: */*\r\n\r\n"
    started = time.monotonic()
    for i in range(n):
        _, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        writer.write(request)
        writers.append(writer)
        if i % 500 == 499:
            await asyncio.sleep(0)
    async with asyncio.timeout(60):
        while True:
            held = await held_count(admin_port)
            if held >= n:
                break
            await asyncio.sleep(0.2)
    after = rss_bytes(pid)
    took = time.monotonic() - started
    print(f"held requests: {held} (reached in {took:.1f} s)")
    print(f"interceptor RSS: {before / 2**20:.1f} MiB idle -> {after / 2**20:.1f} MiB holding")
    print(f"per held request: {(after - before) / n / 1024:.1f} KiB (connection, parser, state)")
    for writer in writers:
        writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10000)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not 1 <= args.requests <= min(50000, hard - 100):
        parser.error(f"--requests must be between 1 and {min(50000, hard - 100)}")
    server, proxy_port, admin_port = spawn_interceptor()
    try:
        uvloop.run(hold(args.requests, proxy_port, admin_port, server.pid))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
