"""Cold-start benchmark: what wakeway adds on top of a workload's own start, measured honestly.

    .venv/bin/python -m loadtest.bench_coldstart [--count 20] [--burst 100] [--burst-rounds 3]
        [--startup-delay 0] [--scaledown 1] [--json results.json]

Runs ``wakeway local`` as its own process (the client here never shares an event loop with the
interceptor) with one workload, ``examples/local/app.py``, and a short ``scaledownPeriod``, then:

- **single**: ``--count`` times, waits until the workload is asleep, sends one request and records
  the time to first byte (TTFB) at the client, from just before connecting. The workload's own
  start-to-ready time (spawn until its readiness check passes) comes from local mode's ``wake``
  event (``--log-format json``). TTFB minus start-to-ready is what wakeway
  adds: noticing the held request, deciding to start, publishing the endpoint, forwarding.
- **burst**: ``--burst-rounds`` times, ``--burst`` concurrent requests hit the sleeping workload;
  all must get 200 from a single start.
- **baseline**, interleaved with the above in the same run: the same command started by hand
  (spawn, poll its readiness path at the interval local mode uses, then the request or the burst),
  timed from the spawn. Its TTFB is what a client would wait if someone started the workload at
  the moment the request arrived, so wakeway/baseline is a meaningful ratio.

Percentiles are nearest-rank (``loadtest.common``); with 20 samples p99 is the maximum.
Loopback only; every wait is bounded (``--timeout`` for the whole run). Exit status 1 if any
request failed, a cold request was not marked cold, or a burst started the workload more than
once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from loadtest.common import (
    LogLine,
    Sleep,
    Wake,
    dist,
    free_port,
    parse_log_line,
    ratio,
    sleep_of,
    wake_of,
)

HERE = Path(__file__).resolve().parent
APP = HERE.parent / "examples" / "local" / "app.py"
# Local mode probes a starting workload every 20 ms (wakeway.local.process.READINESS_INTERVAL);
# the hand-started baseline polls at the same interval so neither side gets a finer clock.
POLL_INTERVAL = 0.02
WORKLOAD = "default/bench"

T = TypeVar("T")

# --- local mode as a child process, read through its JSON events ---


@dataclass
class LocalMode:
    """``wakeway local CONFIG`` on loopback ports it picks itself; its ports, wakes and sleeps
    from the structured events of its JSON log."""

    config: Path
    log_path: Path | None = None
    proxy_port: int = 0
    admin_port: int = 0
    wakes: list[Wake] = field(default_factory=list)
    sleeps: list[Sleep] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # WARNING/ERROR lines, tracebacks
    # time.time() - time.monotonic(): puts an event's ``mono`` on this process's wall clock
    wall_minus_mono: float = field(default_factory=lambda: time.time() - time.monotonic())
    _proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, within: float = 30.0) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wakeway.cli",
            "--log-level",
            "INFO",
            "--log-format",
            "json",
            "local",
            str(self.config),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        await self.until(lambda: self.proxy_port > 0, within, "local mode to listen")

    async def stop(self, within: float = 30.0) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), within)
            except TimeoutError:
                self.problems.append(f"local mode did not stop within {within:g}s; killed")
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 5)
        return proc.returncode

    async def until(self, check: Callable[[], bool], within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not check():
            if self._proc is not None and self._proc.returncode is not None:
                raise RuntimeError(
                    f"local mode exited ({self._proc.returncode}) waiting for {what}"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {within:g}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        log = self.log_path.open("w") if self.log_path is not None else None
        try:
            while line_bytes := await self._proc.stderr.readline():
                line = line_bytes.decode(errors="replace").rstrip()
                if log is not None:
                    log.write(f"{line}\n")
                self._take(line)
                self._changed.set()
        finally:
            if log is not None:
                log.close()
            self._changed.set()

    def _take(self, text: str) -> None:
        line = parse_log_line(text)
        if line is None:  # a workload's own output (it shares stderr), or a crash
            if "Traceback" in text:
                self.problems.append(text)
            return
        self.take(line)

    def take(self, line: LogLine) -> None:
        """Record one line of local mode's JSON log."""
        if line.event == "wake":
            self.wakes.append(wake_of(line, self.wall_minus_mono))
        elif line.event == "sleep":
            self.sleeps.append(sleep_of(line, self.wall_minus_mono))
        elif line.event == "listening":
            self.admin_port = int(line.doc["admin_port"])
            self.proxy_port = int(line.doc["port"])
        elif line.problem:
            self.problems.append(f"{line.level} {line.message} {line.doc.get('exception', '')}")

    async def until_asleep(self, within: float) -> None:
        """Until every wake so far has its sleep (the workload is at zero)."""
        await self.until(lambda: len(self.sleeps) >= len(self.wakes), within, "sleep")


def workload_yaml(name: str, argv: Sequence[str], scaledown: int, hosts: Sequence[str] = ()) -> str:
    """One LocalWorkload with readiness on /healthz and the HTTPScaledObject that routes to it."""
    hosts_line = f"  hosts: {json.dumps(list(hosts))}\n" if hosts else ""
    return f"""\
apiVersion: local.wakeway.dev/v1alpha1
kind: LocalWorkload
metadata: {{name: {name}}}
spec:
  command: {json.dumps(list(argv))}
  readiness: {{httpGet: {{path: /healthz}}}}
  startupTimeout: 30s
  stopGracePeriod: 5s
---
apiVersion: http.keda.sh/v1alpha1
kind: HTTPScaledObject
metadata: {{name: {name}}}
spec:
{hosts_line}  scaleTargetRef:
    {{apiVersion: local.wakeway.dev/v1alpha1, kind: LocalWorkload, name: {name}}}
  scaledownPeriod: {scaledown}
"""


def app_argv(port: str, startup_delay: float) -> list[str]:
    return [
        sys.executable,
        str(APP),
        "--port",
        port,
        "--name",
        "bench",
        "--startup-delay",
        f"{startup_delay:g}",
    ]


# --- a raw HTTP/1.1 client: one connection per request, TTFB without any library in between ---


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    ttfb: float  # from just before connecting to the first response byte
    headers: dict[str, str]
    body: bytes
    error: str = ""

    @property
    def cold(self) -> bool | None:
        value = self.headers.get("x-wakeway-cold-start")
        return None if value is None else value == "true"

    @property
    def pid(self) -> int | None:
        try:
            pid = json.loads(self.body)["pid"]
        except (ValueError, KeyError, TypeError):
            return None
        return int(pid)


async def fetch(
    port: int, path: str = "/", *, limit: float = 30.0, t0: float | None = None
) -> Reply:
    """GET 127.0.0.1:port/path with ``Connection: close``; never raises for network errors."""
    began = time.perf_counter() if t0 is None else t0
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode())
            first = await reader.read(65536)
            ttfb = time.perf_counter() - began
            if not first:
                return Reply(0, ttfb, {}, b"", "connection closed before any response byte")
            data = first + await reader.read()
    except (OSError, TimeoutError) as exc:
        return Reply(0, time.perf_counter() - began, {}, b"", f"{type(exc).__name__}: {exc}")
    finally:
        if writer is not None:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, ttfb, headers, body, "" if status else "malformed response")


# --- the hand-started baseline ---


@dataclass(frozen=True, slots=True)
class HandStart:
    start_to_ready: float
    replies: list[Reply]  # ttfb measured from the spawn


async def hand_start(startup_delay: float, concurrency: int, limit: float) -> HandStart:
    """Spawn the workload, poll its readiness path, then ``concurrency`` requests at once."""
    port = free_port()
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *app_argv(str(port), startup_delay),
        stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = t0 + limit
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"baseline workload exited with {proc.returncode}")
            probe = await fetch(port, "/healthz", limit=1.0)
            if 200 <= probe.status < 500:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError("baseline workload not ready in time")
            await asyncio.sleep(POLL_INTERVAL)
        ready = time.perf_counter() - t0
        replies = await asyncio.gather(*(fetch(port, "/", t0=t0) for _ in range(concurrency)))
        return HandStart(ready, list(replies))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


# --- statistics and the report ---


@dataclass
class Results:
    config: dict[str, Any]
    single: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {
            "wakeway": {"ttfb": [], "start_to_ready": [], "added": [], "waited": []},
            "baseline": {"ttfb": [], "start_to_ready": [], "added": []},
        }
    )
    burst: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"wakeway": [], "baseline": []}
    )
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"single": {}, "burst": {}}
        for metric in ("ttfb", "start_to_ready", "added"):
            w = dist(self.single["wakeway"][metric])
            b = dist(self.single["baseline"][metric])
            out["single"][metric] = {
                "wakeway": w,
                "baseline": b,
                "ratio": {q: ratio(w[q], b[q]) for q in ("p50", "p99")},
            }
        for side in ("wakeway", "baseline"):
            rounds = self.burst[side]
            lat = [x for r in rounds for x in r["latency"]]
            out["burst"][side] = {
                "rounds": len(rounds),
                "requests": sum(r["requests"] for r in rounds),
                "ok": sum(r["ok"] for r in rounds),
                "starts": [r["starts"] for r in rounds],
                "latency": dist(lat),
            }
        w, b = out["burst"]["wakeway"]["latency"], out["burst"]["baseline"]["latency"]
        out["burst"]["ratio"] = {q: ratio(w[q], b[q]) for q in ("p50", "p99", "max")}
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "summary": self.summary(),
            "single": self.single,
            "burst": self.burst,
            "problems": self.problems,
        }


def ms(x: float) -> str:
    return f"{x * 1000:8.1f}"


def print_table(results: Results) -> None:
    s = results.summary()
    c = results.config
    print()
    print(
        f"cold start: {c['count']} single requests, {c['burst_rounds']} bursts of {c['burst']}; "
        f"workload startup delay {c['startup_delay']:g}s; times in ms"
    )
    header = (
        f"{'':34} {'baseline':>8} {'':>8} {'wakeway':>8} {'':>8} {'ratio':>6} {'':>6}\n"
        f"{'':34} {'p50':>8} {'p99':>8} {'p50':>8} {'p99':>8} {'p50':>6} {'p99':>6}"
    )
    print(header)
    labels = {
        "ttfb": "time to first byte",
        "start_to_ready": "workload start-to-ready",
        "added": "TTFB - start-to-ready (added)",
    }
    for metric, label in labels.items():
        row = s["single"][metric]
        b, w, r = row["baseline"], row["wakeway"], row["ratio"]
        print(
            f"{label:34} {ms(b['p50'])} {ms(b['p99'])} {ms(w['p50'])} {ms(w['p99'])} "
            f"{r['p50']:6.2f} {r['p99']:6.2f}"
        )
    wb, bb = s["burst"]["wakeway"], s["burst"]["baseline"]
    br = s["burst"]["ratio"]
    print(
        f"{'burst latency (TTFB)':34} {ms(bb['latency']['p50'])} {ms(bb['latency']['p99'])} "
        f"{ms(wb['latency']['p50'])} {ms(wb['latency']['p99'])} {br['p50']:6.2f} {br['p99']:6.2f}"
    )
    print(
        f"burst: wakeway {wb['ok']}/{wb['requests']} ok, starts per burst {wb['starts']}; "
        f"baseline {bb['ok']}/{bb['requests']} ok"
    )
    added = s["single"]["added"]["wakeway"]
    base_ttfb = s["single"]["ttfb"]["baseline"]
    print(
        f"wakeway adds {added['p50'] * 1000:.1f} ms (p50) / {added['p99'] * 1000:.1f} ms (p99) "
        f"to the workload's own start; that is {ratio(added['p50'], base_ttfb['p50']):.1%} of "
        f"the hand-started TTFB at p50"
    )
    for problem in results.problems:
        print(f"problem: {problem}")


# --- the run ---


async def bounded(aw: Awaitable[T], deadline: float, what: str) -> T:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"run time exhausted before {what}")
    return await asyncio.wait_for(aw, left)


async def run(args: argparse.Namespace) -> Results:
    deadline = time.monotonic() + args.timeout
    results = Results(
        config={
            "count": args.count,
            "burst": args.burst,
            "burst_rounds": args.burst_rounds,
            "startup_delay": args.startup_delay,
            "scaledown_period": args.scaledown,
            "poll_interval": POLL_INTERVAL,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "command": " ".join(["python -m loadtest.bench_coldstart", *sys.argv[1:]]),
        }
    )
    with tempfile.TemporaryDirectory(prefix="wakeway-coldstart-") as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            workload_yaml("bench", app_argv("{port}", args.startup_delay), args.scaledown)
        )
        local = LocalMode(config, log_path=Path(tmp) / "wakeway.log")
        await local.start()
        wait_sleep = args.scaledown + 15.0
        try:
            print(f"local mode on 127.0.0.1:{local.proxy_port}", flush=True)
            for i in range(args.count):
                await bounded(local.until_asleep(wait_sleep), deadline, "sleep")
                await single_wakeway(local, results, i)
                base = await bounded(hand_start(args.startup_delay, 1, 30), deadline, "baseline")
                single_baseline(base, results, i)
                print(
                    f"  cold start {i + 1}/{args.count}: "
                    f"wakeway {results.single['wakeway']['ttfb'][-1] * 1000:.1f} ms, "
                    f"baseline {results.single['baseline']['ttfb'][-1] * 1000:.1f} ms",
                    flush=True,
                )
            for i in range(args.burst_rounds):
                await bounded(local.until_asleep(wait_sleep), deadline, "sleep")
                await burst_wakeway(local, results, args.burst, deadline)
                base = await bounded(
                    hand_start(args.startup_delay, args.burst, 30), deadline, "baseline burst"
                )
                burst_baseline(base, results)
                print(f"  burst {i + 1}/{args.burst_rounds} done", flush=True)
        finally:
            code = await local.stop()
            results.problems.extend(f"local mode: {p}" for p in local.problems)
            if code not in (0, None):
                results.problems.append(f"local mode exited with {code}")
    return results


async def single_wakeway(local: LocalMode, results: Results, i: int) -> None:
    before = len(local.wakes)
    reply = await fetch(local.proxy_port, f"/cold/{i}")
    await local.until(lambda: len(local.wakes) > before, 10, "wake event")
    wake = local.wakes[-1]
    if reply.status != 200:
        results.problems.append(f"cold request {i}: status {reply.status} {reply.error}")
        return
    if reply.cold is not True:
        results.problems.append(f"cold request {i}: X-Wakeway-Cold-Start is {reply.cold}")
    w = results.single["wakeway"]
    w["ttfb"].append(reply.ttfb)
    w["start_to_ready"].append(wake.ready_in)
    w["added"].append(reply.ttfb - wake.ready_in)
    w["waited"].append(wake.waited)


def single_baseline(base: HandStart, results: Results, i: int) -> None:
    reply = base.replies[0]
    if reply.status != 200:
        results.problems.append(f"baseline request {i}: status {reply.status} {reply.error}")
        return
    b = results.single["baseline"]
    b["ttfb"].append(reply.ttfb)
    b["start_to_ready"].append(base.start_to_ready)
    b["added"].append(reply.ttfb - base.start_to_ready)


async def burst_wakeway(local: LocalMode, results: Results, n: int, deadline: float) -> None:
    before = len(local.wakes)
    replies = await bounded(
        asyncio.gather(*(fetch(local.proxy_port, f"/burst/{k}") for k in range(n))),
        deadline,
        "burst",
    )
    await local.until(lambda: len(local.wakes) > before, 10, "wake event")
    starts = len(local.wakes) - before
    ok = [r for r in replies if r.status == 200]
    pids = {r.pid for r in ok}
    cold = sum(1 for r in ok if r.cold)
    results.burst["wakeway"].append(
        {
            "requests": n,
            "ok": len(ok),
            "starts": starts,
            "pids": len(pids),
            "marked_cold": cold,
            "start_to_ready": local.wakes[before].ready_in,
            "latency": [r.ttfb for r in ok],
            "errors": sorted({f"{r.status} {r.error}" for r in replies if r.status != 200}),
        }
    )
    if len(ok) != n:
        results.problems.append(f"burst: {n - len(ok)} of {n} requests failed")
    if starts != 1 or len(pids) != 1:
        results.problems.append(f"burst: {starts} starts, {len(pids)} distinct pids")


def burst_baseline(base: HandStart, results: Results) -> None:
    ok = [r for r in base.replies if r.status == 200]
    results.burst["baseline"].append(
        {
            "requests": len(base.replies),
            "ok": len(ok),
            "starts": 1,
            "start_to_ready": base.start_to_ready,
            "latency": [r.ttfb for r in ok],
        }
    )
    if len(ok) != len(base.replies):
        results.problems.append(f"baseline burst: {len(base.replies) - len(ok)} requests failed")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--count", type=int, default=20, help="single cold starts (default 20)")
    ap.add_argument("--burst", type=int, default=100, help="concurrent requests per burst")
    ap.add_argument("--burst-rounds", type=int, default=3, help="bursts while cold (default 3)")
    ap.add_argument(
        "--startup-delay",
        type=float,
        default=0.0,
        help="seconds the workload sleeps before listening",
    )
    ap.add_argument("--scaledown", type=int, default=1, help="scaledownPeriod in seconds")
    ap.add_argument("--timeout", type=float, default=600.0, help="bound on the whole run (s)")
    ap.add_argument("--json", type=Path, help="write every sample and the summary here")
    args = ap.parse_args(argv)
    if not 1 <= args.count <= 1000 or not 0 <= args.burst_rounds <= 100:
        ap.error("--count must be 1..1000 and --burst-rounds 0..100")
    if not 1 <= args.burst <= 1000:
        ap.error("--burst must be 1..1000")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = asyncio.run(run(args))
    print_table(results)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results.as_json(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if results.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
