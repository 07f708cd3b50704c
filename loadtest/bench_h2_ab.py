"""A/B of the interceptor's HTTP/2 path: two source trees, the same load, interleaved rounds.

    python -m loadtest.bench_h2_ab --before SRC [--after SRC] [--rounds 3] [--seconds 10]
        [--rate 1000] [--profile-dir DIR]

``SRC`` is a tree's ``src`` directory (for "before", e.g. ``git archive`` of the commit under
test, unpacked); "after" defaults to this repository's. Each tree runs as its own interceptor
process (``PYTHONPATH=SRC``) with an h2c backend on loopback: nginx serving 100 bytes over h2c
for h2c GETs, h2bench's gRPC echo server for unary calls. Every round runs, for each tree (the
order alternating between rounds): h2c uncapped (closed loop, as the peer benchmark) and gRPC
unary at ``--rate`` (open loop). It prints per round each tree's req/s and the interceptor's CPU
µs per request (from /proc), then the medians and after/before ratios, computed per round. On a
shared machine only these same-run ratios mean anything.

With ``--profile-dir`` it instead records one py-spy profile per tree and load (needs py-spy).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.interop import binaries

from loadtest import h2gen
from loadtest.common import free_port, percentile
from loadtest.loadgen import cpu_seconds, nginx_argv, nginx_config, wait_port

REPO = Path(__file__).resolve().parents[1]
H2C_BODY = """
    server {{
        listen 127.0.0.1:{port} http2 backlog=4096;
        location / {{ root {dir}/www; }}
    }}
"""


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int


@dataclass
class Figures:
    rps: dict[str, list[float]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    p50_ms: dict[str, list[float]] = field(default_factory=dict)
    p99_ms: dict[str, list[float]] = field(default_factory=dict)


def spawn(src: Path, backend_port: int) -> Server:
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.bench_proxy_server", str(backend_port), "h2c"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r'"proxy": (\d+)', line)
    if match is None:
        proc.kill()
        raise RuntimeError(f"the interceptor from {src} did not start: {line!r}")
    return Server(proc, int(match.group(1)))


def h2bench_run(argv: list[str], seconds: float, *, open_loop: bool) -> h2gen.H2Result:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode:
        raise RuntimeError(f"h2bench failed: {' '.join(argv[1:])}:\n{done.stderr[-2000:]}")
    return h2gen.parse(done.stdout, open_loop=open_loop)


def load(exe: Path, kind: str, port: int, seconds: float, rate: float) -> list[str]:
    if kind == "h2c":
        return h2gen.h2c_argv(exe, f"http://127.0.0.1:{port}/b", "bench.test", seconds)
    return h2gen.grpc_argv(exe, f"127.0.0.1:{port}", "bench.test", rate, seconds)


def measure(
    exe: Path, kind: str, server: Server, seconds: float, rate: float
) -> tuple[float, float, list[float]]:
    """Requests per second, the interceptor's CPU µs per request and (open loop) the
    latencies of one run."""
    before = cpu_seconds(server.proc.pid)
    result = h2bench_run(
        load(exe, kind, server.port, seconds, rate), seconds, open_loop=kind != "h2c"
    )
    used = cpu_seconds(server.proc.pid) - before
    if result.errors:
        raise RuntimeError(f"{kind}: {result.errors} errors: {result.error_samples}")
    return result.rps, used / result.ok * 1e6, result.latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=REPO / "src")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--profile-dir", type=Path)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 0 < args.seconds <= 120:
        parser.error("keep it bounded: 1..20 rounds of at most 120 s")
    exe = binaries.h2bench()
    work = Path(tempfile.mkdtemp(prefix="wakeway-h2ab-"))
    (work / "www").mkdir()
    work.chmod(0o755)  # nginx workers run as an unprivileged user
    (work / "www" / "b").write_bytes(b"x" * 100)
    nginx_port, grpc_port = free_port(), free_port()
    backends = [
        subprocess.Popen(
            nginx_argv(work, nginx_config(work, "h2c", H2C_BODY.format(port=nginx_port, dir=work)))
        ),
        subprocess.Popen(
            [str(exe), "serve-grpc", "-listen", f"127.0.0.1:{grpc_port}"], stderr=subprocess.DEVNULL
        ),
    ]
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    servers: dict[tuple[str, str], Server] = {}
    try:
        wait_port(nginx_port)
        wait_port(grpc_port)
        for tree, src in trees.items():
            servers[tree, "h2c"] = spawn(src, nginx_port)
            servers[tree, "grpc"] = spawn(src, grpc_port)
        for (_, kind), server in servers.items():  # warm-up, and a check that it answers
            measure(exe, kind, server, 2.0, args.rate)
        if args.profile_dir is not None:
            return profile(exe, servers, args)
        figures = {kind: Figures() for kind in ("h2c", "grpc")}
        for i in range(args.rounds):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for kind, fig in figures.items():
                for tree in order:
                    rps, cpu, lat = measure(exe, kind, servers[tree, kind], args.seconds, args.rate)
                    fig.rps.setdefault(tree, []).append(rps)
                    fig.cpu_us.setdefault(tree, []).append(cpu)
                    line = f"round {i + 1} {kind:4s} {tree:6s} {rps:9.0f} req/s {cpu:7.1f} µs/req"
                    if lat:
                        p50, p99 = percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3
                        fig.p50_ms.setdefault(tree, []).append(p50)
                        fig.p99_ms.setdefault(tree, []).append(p99)
                        line += f"  p50 {p50:.2f} ms  p99 {p99:.2f} ms"
                    print(line, flush=True)
        report(figures, args)
    finally:
        for server in servers.values():
            server.proc.terminate()
            server.proc.wait(30)
        for proc in backends:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(figures: dict[str, Figures], args: argparse.Namespace) -> None:
    load1 = os.getloadavg()[0]
    print(f"\nmedians over {args.rounds} rounds of {args.seconds:g} s (load average {load1:.2f})")
    print("| load | metric | before | after | after/before (median of per-round ratios) |")
    print("|---|---|---|---|---|")
    for kind, fig in figures.items():
        name = "h2c uncapped" if kind == "h2c" else f"gRPC unary at {args.rate:g}/s"
        metrics = [("req/s", fig.rps), ("CPU µs/req", fig.cpu_us)]
        metrics += [("p50 ms", fig.p50_ms), ("p99 ms", fig.p99_ms)] if fig.p50_ms else []
        for metric, values in metrics:
            b, a = values["before"], values["after"]
            ratios = [x / y for x, y in zip(a, b, strict=True)]
            print(
                f"| {name} | {metric} | {statistics.median(b):.1f} | {statistics.median(a):.1f} "
                f"| {statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)}) |"
            )


def profile(exe: Path, servers: dict[tuple[str, str], Server], args: argparse.Namespace) -> int:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.profile_dir.mkdir(parents=True, exist_ok=True)
    for (tree, kind), server in servers.items():
        out = args.profile_dir / f"{tree}-{kind}.txt"
        argv = [spy, "record", "-p", str(server.proc.pid), "-f", "raw", "-o", str(out)]
        argv += ["-d", f"{args.seconds:g}", "-r", "250", "--nonblocking"]
        rec = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # py-spy attaching; the load is what is profiled
        measure(exe, kind, server, args.seconds - 1, args.rate)
        rec.wait(args.seconds + 30)
        print(f"{tree} {kind}: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
