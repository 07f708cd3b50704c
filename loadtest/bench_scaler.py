"""Scaler latency: first held request -> StreamIsActive ``true``, and IsActive/GetMetrics.

    .venv/bin/python -m loadtest.bench_scaler [--wakes 50] [--rounds 3] [--calls 2000]

Three processes on loopback: an interceptor (``bench_proxy_server``: every request goes to one
target with no endpoints, so it is held), the scaler subscribed to its count stream, and this
client. Per wake the client opens a connection, takes ``t0`` just before writing a request, and
takes ``t1`` when ``StreamIsActive`` yields ``true``; closing the connection ends the held request
and the stream goes back to ``false`` before the next wake. The same client also reads the
interceptor's ``/counts`` stream directly: the baseline row is ``t0`` to that stream's ``wake``
line, so "scaler adds" is what the scaler's hop (parse, aggregate, gRPC) costs on top.

IsActive/GetMetrics are timed one call at a time from the client (a gRPC round trip over
loopback), and in-process without gRPC (metadata lookup + aggregate, what "answered from
memory" means).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import grpc
import uvloop

from loadtest.bench_proxy_server import TARGET, spawn, spawn_interceptor
from loadtest.common import percentile
from wakeway.protocol import externalscaler_pb2 as pb
from wakeway.protocol.externalscaler_pb2_grpc import ExternalScalerStub
from wakeway.scaler import Scaler, ScalerSettings, scaler_metadata
from wakeway.scaler.aggregate import Aggregator
from wakeway.scaler.live import LiveCounts
from wakeway.scaler.service import ExternalScalerService
from wakeway.scaler.wire import CountLine, Counts

REQUEST = b"GET / HTTP/1.1\r\nHost: bench.example\r\n\r\n"


# -- the scaler, in its own process (the interceptor is bench_proxy_server's) ------------------


async def _scaler_role(admin: str) -> None:
    settings = ScalerSettings(listen_host="127.0.0.1", listen_port=0, interceptors=(admin,))
    scaler = Scaler(settings)
    await scaler.start()
    await _until(lambda: bool(scaler.live.aggregator.replicas))
    print(json.dumps({"grpc": scaler.port}), flush=True)
    await asyncio.Event().wait()


async def _until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:  # bounded poll of another component's state
            if predicate():
                return
            await asyncio.sleep(0.01)


# -- measurements ------------------------------------------------------------------------------


def _ms(values: Sequence[float]) -> str:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    return f"p50 {p50 * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms"


async def _read_until(call: Any, value: bool) -> None:
    async with asyncio.timeout(10):
        while (await call.read()).result is not value:
            pass


async def _wakes(proxy: int, admin: int, stub: Any, n: int) -> tuple[list[float], list[float]]:
    ref = pb.ScaledObjectRef(
        name="bench", namespace="bench", scalerMetadata=scaler_metadata(TARGET)
    )
    via_scaler: list[float] = []
    direct: list[float] = []
    wake_at: asyncio.Future[float] | None = None

    async with aiohttp.ClientSession() as http:
        counts = await http.get(f"http://127.0.0.1:{admin}/counts")

        async def read_counts() -> None:
            async for raw in counts.content:
                if b'"wake":true' in raw and wake_at is not None and not wake_at.done():
                    wake_at.set_result(time.perf_counter())

        reader_task = asyncio.create_task(read_counts())
        stream = stub.StreamIsActive(ref)
        await _read_until(stream, False)
        loop = asyncio.get_running_loop()
        for _ in range(n):
            _, writer = await asyncio.open_connection("127.0.0.1", proxy)
            wake_at = loop.create_future()
            t0 = time.perf_counter()
            writer.write(REQUEST)
            await _read_until(stream, True)
            t1 = time.perf_counter()
            async with asyncio.timeout(10):
                t_direct = await wake_at
            via_scaler.append(t1 - t0)
            direct.append(t_direct - t0)
            writer.close()
            await _read_until(stream, False)
        stream.cancel()
        reader_task.cancel()
        counts.close()
    return via_scaler, direct


async def _unary(stub: Any, calls: int) -> tuple[list[float], list[float]]:
    ref = pb.ScaledObjectRef(
        name="bench", namespace="bench", scalerMetadata=scaler_metadata(TARGET)
    )
    request = pb.GetMetricsRequest(
        scaledObjectRef=ref, metricName="s0-http-bench-bench-concurrency"
    )
    for _ in range(100):  # warm the channel
        await stub.IsActive(ref)
    is_active: list[float] = []
    get_metrics: list[float] = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await stub.IsActive(ref)
        t1 = time.perf_counter()
        await stub.GetMetrics(request)
        t2 = time.perf_counter()
        is_active.append(t1 - t0)
        get_metrics.append(t2 - t1)
    return is_active, get_metrics


def _in_process(calls: int) -> tuple[list[float], list[float]]:
    """The servicer's work without gRPC: parse (cached) metadata, read the aggregate."""
    live = LiveCounts(Aggregator(15.0))
    live.aggregator.apply("a:1", CountLine("snapshot", 1, {"bench/bench": Counts(3, 0, 10)}), 0.0)
    service = ExternalScalerService(live, ScalerSettings())
    ref = pb.ScaledObjectRef(
        name="bench", namespace="bench", scalerMetadata=scaler_metadata(TARGET)
    )
    active: list[float] = []
    value: list[float] = []
    for _ in range(calls):
        t0 = time.perf_counter()
        live.active(service.target(ref))
        t1 = time.perf_counter()
        live.value(service.target(ref))
        t2 = time.perf_counter()
        active.append(t1 - t0)
        value.append(t2 - t1)
    return active, value


async def _bench(args: argparse.Namespace) -> None:
    interceptor, proxy, admin = spawn_interceptor()
    scaler = None
    try:
        role = ["--role", "scaler", "--admin", f"127.0.0.1:{admin}"]
        scaler, sports = spawn("loadtest.bench_scaler", *role)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{sports['grpc']}") as channel:
            stub = ExternalScalerStub(channel)
            all_scaler: list[float] = []
            all_direct: list[float] = []
            print(f"first held request -> StreamIsActive true, {args.wakes} wakes per round")
            for r in range(args.rounds):
                via, direct = await _wakes(proxy, admin, stub, args.wakes)
                added = [a - b for a, b in zip(via, direct, strict=True)]
                print(f"  round {r + 1}: via scaler {_ms(via)}")
                print(f"           count stream {_ms(direct)}   (baseline)")
                print(f"           scaler adds  {_ms(added)}")
                all_scaler += via
                all_direct += direct
            added = [a - b for a, b in zip(all_scaler, all_direct, strict=True)]
            print(f"  all {len(all_scaler)}: via scaler {_ms(all_scaler)}")
            print(f"           count stream {_ms(all_direct)}   (baseline)")
            print(f"           scaler adds  {_ms(added)}")
            is_active, get_metrics = await _unary(stub, args.calls)
            print(f"gRPC round trip over loopback, {args.calls} calls each")
            print(f"  IsActive    {_ms(is_active)}")
            print(f"  GetMetrics  {_ms(get_metrics)}")
        active, value = _in_process(args.calls * 10)
        print(f"in-process answer (no gRPC), {args.calls * 10} calls each")
        print(f"  IsActive    {_ms(active)}")
        print(f"  GetMetrics  {_ms(value)}")
    finally:
        for proc in (scaler, interceptor):
            if proc is not None:
                proc.kill()
                proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wakes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--role", choices=["scaler"], help=argparse.SUPPRESS)
    parser.add_argument("--admin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "scaler":
        uvloop.run(_scaler_role(args.admin))
    else:
        uvloop.run(_bench(args))


if __name__ == "__main__":
    main()
