"""Proxy benchmark: direct vs wakeway vs nginx-as-proxy, same backend, one run.

    .venv/bin/python -m loadtest.bench_proxy [--runs 3] [--duration 10] [--threads 2]
        [--workers N] [--listener reuseport|shared] [--py-spy DIR]

Installs Debian's nginx and wrk when missing (apt-get, as root), starts nginx serving a small
static file on loopback as the backend, a wakeway interceptor and an nginx reverse proxy in
front of it, then measures:

- uncapped throughput: ``wrk -t{threads} -c64`` for each path, interleaved, ``--runs`` times;
  medians, plus the interceptor's CPU time per request;
- latency at a fixed 1000 req/s: wrk2 is not packaged by Debian and wrk is closed-loop, so a
  small open-loop generator (loadgen.py, shared with bench_peer.py) sends each request at its
  scheduled time over a pool of keep-alive connections (uvloop, raw protocol, perf_counter
  timing), for each path in turn.

``--workers N`` runs the interceptor with N worker processes and nginx with N worker processes
(its CPU per request is then that of the interceptor and all its workers, and the share of it
each worker took shows how evenly connections were spread; ``--listener`` chooses how the
workers listen, the ``workers_listener`` setting). ``--py-spy DIR``
adds one more wrk run with py-spy sampling every process that serves the proxy listener
(raw collapsed stacks in DIR) and prints the frames where the most samples were taken.

Everything listens on 127.0.0.1; every load loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from loadtest.bench_proxy_server import spawn_interceptor
from loadtest.common import format_ratio, free_ports, percentile
from loadtest.loadgen import (
    BACKEND_BODY,
    CONNECTIONS,
    PROXY_BODY,
    children,
    cpu_seconds,
    ensure_tools,
    fixed_rate,
    start_nginx,
    tree_cpu_seconds,
    wait_port,
    wrk,
)

BODY = b"x" * 100
RATE = 1000


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
    parser.add_argument("--workers", type=int, default=1, help="interceptor and nginx workers")
    parser.add_argument("--listener", choices=("reuseport", "shared"), default="reuseport")
    parser.add_argument("--py-spy", type=Path, help="profile one more run; stacks go here")
    args = parser.parse_args()
    if args.runs < 1 or args.runs > 10 or args.duration > 60 or args.latency_seconds > 60:
        parser.error("keep it bounded: runs 1..10, durations up to 60 s")
    if not 1 <= args.workers <= 16:
        parser.error("--workers: 1..16")
    ensure_tools()

    procs: list[subprocess.Popen[Any]] = []
    with tempfile.TemporaryDirectory(prefix="wakeway-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx workers run as an unprivileged user
        (work / "www").mkdir()
        (work / "www" / "b").write_bytes(BODY)
        direct, nginx = free_ports(2)  # nginx needs a number; the interceptor takes port 0
        ports = Paths(direct=direct, wakeway=0, nginx=nginx)
        try:
            procs.append(
                start_nginx(
                    work,
                    "backend",
                    BACKEND_BODY.format(address="127.0.0.1", port=ports.direct, dir=work),
                )
            )
            wait_port(ports.direct)
            procs.append(
                start_nginx(
                    work,
                    "proxy",
                    PROXY_BODY.format(
                        address="127.0.0.1",
                        port=ports.nginx,
                        backend_address="127.0.0.1",
                        backend=ports.direct,
                    ),
                    workers=args.workers,
                )
            )
            wakeway, ports.wakeway, _ = spawn_interceptor(
                ports.direct, workers=args.workers, listener=args.listener
            )
            procs.append(wakeway)
            wait_port(ports.nginx)
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
    workers = children(wakeway)
    worker_cpu = dict.fromkeys(workers, 0.0)
    primary_cpu = 0.0  # with workers: the process that sums their counts
    for i in range(args.runs):
        for name in names:
            cpu0 = tree_cpu_seconds(wakeway)
            each0 = {w: cpu_seconds(w) for w in workers}
            rps = wrk(getattr(ports, name), args.duration, args.threads)
            if name == "wakeway":
                for w in workers:
                    worker_cpu[w] += cpu_seconds(w) - each0[w]
                cpu = tree_cpu_seconds(wakeway) - cpu0
                primary_cpu += cpu - sum(cpu_seconds(w) - each0[w] for w in workers)
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

    if args.py_spy is not None:
        profile(args, ports.wakeway, [*children(wakeway)] or [wakeway])

    print()
    wrk_args = f"-t{args.threads} -c{CONNECTIONS} -d{args.duration:g}s"
    print(f"workers: {args.workers} (interceptor and nginx)")
    print(f"uncapped, wrk {wrk_args}, median of {args.runs}:")
    for name in names:
        print(f"  {name:8s} {med[name]:10.0f} req/s   runs: {[round(x) for x in results[name]]}")
    cpu_us = statistics.median(cpu_per_request) * 1e6
    print(f"  wakeway CPU per request: {cpu_us:.1f} us")
    if workers:
        total = sum(worker_cpu.values()) or 1.0
        shares = " / ".join(f"{100 * c / total:.0f} %" for c in worker_cpu.values())
        print(f"  CPU share of each worker ({args.listener}): {shares}")
        whole = primary_cpu + sum(worker_cpu.values()) or 1.0
        print(f"  CPU share of the primary (counts, admin): {100 * primary_cpu / whole:.1f} %")
    print(f"fixed rate {RATE} req/s for {args.latency_seconds:g} s (open loop):")
    for name in names:
        p50, p99, worst = p[name]
        print(f"  {name:8s} p50 {p50:6.3f} ms   p99 {p99:6.3f} ms   max {worst:6.3f} ms")
    ratio_nginx = med["wakeway"] / med["nginx"]
    added_p99 = p["wakeway"][1] - p["direct"][1]
    print("ratios:")
    goal = "(goal >= 0.5)"
    print(f"  wakeway/nginx throughput  {format_ratio(med['wakeway'], med['nginx'])}  {goal}")
    print(f"  wakeway/direct throughput {format_ratio(med['wakeway'], med['direct'])}")
    print(f"  nginx/direct throughput   {format_ratio(med['nginx'], med['direct'])}")
    print(
        f"  added p99 at {RATE} req/s: wakeway {added_p99:+.3f} ms (goal <= 2 ms), "
        f"nginx {p['nginx'][1] - p['direct'][1]:+.3f} ms"
    )
    ok = ratio_nginx >= 0.5 and added_p99 <= 2.0
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


def profile(args: argparse.Namespace, port: int, pids: list[int], top: int = 15) -> None:
    """py-spy on every process serving the proxy during one more wrk run; the frames where
    most samples were taken (their own time), over all of them."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    args.py_spy.mkdir(parents=True, exist_ok=True)
    seconds = max(1, int(args.duration))
    spies = [
        subprocess.Popen(
            [
                *(py_spy, "record", "--pid", str(pid), "--rate", "250"),
                *("--duration", str(seconds), "--format", "raw", "--nonblocking"),
                *("--output", str(args.py_spy / f"{pid}.txt")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    wrk(port, seconds, args.threads)
    for spy in spies:
        spy.wait(timeout=seconds + 30)
    own: Counter[str] = Counter()
    for pid in pids:
        for line in (args.py_spy / f"{pid}.txt").read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            leaf = re.sub(r":\d+\)$", ")", stack.rsplit(";", 1)[-1])
            own[leaf] += int(count)
    total = sum(own.values()) or 1
    print(f"py-spy, {len(pids)} process(es), {seconds} s at 250 Hz: top frames by own samples")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f} %  {frame}")


if __name__ == "__main__":
    raise SystemExit(main())
