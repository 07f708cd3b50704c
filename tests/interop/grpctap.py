"""A counting gRPC proxy between KEDA and wakeway's scaler, so a test can see every RPC KEDA made.

    python -m tests.interop.grpctap --listen HOST:PORT --upstream HOST:PORT --log FILE

It forwards the raw bytes of every call (unary and server-streaming) to the upstream and writes
one JSON line per event to FILE: a call's method and final status code, what the test checks in
it (GetMetrics' metricName and values, GetMetricSpec's metric names, IsActive's result), and for
StreamIsActive the opening and each message. The scaler itself stays untouched; the wire format
is decoded here by hand (a few proto3 fields), so the tap does not depend on generated stubs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import grpc

SERVICE = "/externalscaler.ExternalScaler/"
STREAMING = {"StreamIsActive", "StreamMetricSpec"}


# -- proto3 wire format: just enough to read the fields the tests look at --------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint/fixed fields, bytes for length-delimited."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 1:
            out.append((number, int.from_bytes(data[i : i + 8], "little")))
            i += 8
        elif wire == 2:
            size, i = _varint(data, i)
            out.append((number, data[i : i + size]))
            i += size
        elif wire == 5:
            out.append((number, int.from_bytes(data[i : i + 4], "little")))
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _string(data: bytes, number: int) -> str:
    return next((bytes(v).decode() for n, v in fields(data) if n == number), "")


def _strings_of_messages(data: bytes, outer: int, inner: int) -> list[str]:
    return [_string(bytes(v), inner) for n, v in fields(data) if n == outer]


def _bool(data: bytes, number: int) -> bool:
    return any(n == number and v == 1 for n, v in fields(data))


def describe_request(method: str, data: bytes) -> dict[str, Any]:
    if method == "GetMetrics":  # GetMetricsRequest{scaledObjectRef=1, metricName=2}
        ref = next((bytes(v) for n, v in fields(data) if n == 1), b"")
        return {"metricName": _string(data, 2), "name": _string(ref, 1)}
    return {"name": _string(data, 1), "namespace": _string(data, 2)}  # ScaledObjectRef


def describe_response(method: str, data: bytes) -> dict[str, Any]:
    if method in ("IsActive", "StreamIsActive"):
        return {"result": _bool(data, 1)}
    if method in ("GetMetricSpec", "StreamMetricSpec"):
        return {"metricNames": _strings_of_messages(data, 1, 1)}
    if method == "GetMetrics":  # metricValues=1: MetricValue{name=1, int64=2, double=3}
        values = [bytes(v) for n, v in fields(data) if n == 1]
        return {
            "metricNames": [_string(v, 1) for v in values],
            "metricValues": [_metric_value(v) for v in values],
        }
    return {}


def _metric_value(data: bytes) -> float:
    """metricValueFloat, or metricValue when that is 0 (as KEDA reads it)."""
    found = dict(fields(data))
    raw = found.get(3, 0)
    value = struct.unpack("<d", int(raw).to_bytes(8, "little"))[0] if isinstance(raw, int) else 0.0
    if value == 0.0:
        whole = found.get(2, 0)
        value = float(whole if isinstance(whole, int) else 0)
    return float(value)


# -- the proxy -----------------------------------------------------------------------------------


class Tap(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def __init__(self, channel: grpc.aio.Channel, log: IO[str]) -> None:
        self._channel = channel
        self._log = log

    def record(self, **event: Any) -> None:
        self._log.write(json.dumps({"t": time.time(), **event}) + "\n")
        self._log.flush()

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        full: str = handler_call_details.method
        method = full.removeprefix(SERVICE)
        if method in STREAMING:
            return grpc.unary_stream_rpc_method_handler(self._streaming(full, method))
        return grpc.unary_unary_rpc_method_handler(self._unary(full, method))

    def _unary(
        self, full: str, method: str
    ) -> Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]:
        async def call(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            req = describe_request(method, request)
            try:
                answer: bytes = await self._channel.unary_unary(full, None, None)(
                    request, timeout=30
                )
            except grpc.aio.AioRpcError as e:
                self.record(method=method, code=e.code().name, request=req, details=e.details())
                await context.abort(e.code(), e.details() or "")
                raise  # abort raises; this only satisfies the type checker
            self.record(
                method=method, code="OK", request=req, response=describe_response(method, answer)
            )
            return answer

        return call

    def _streaming(
        self, full: str, method: str
    ) -> Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], AsyncIterator[bytes]]:
        async def call(
            request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
        ) -> AsyncIterator[bytes]:
            req = describe_request(method, request)
            self.record(method=method, event="open", request=req)
            upstream = self._channel.unary_stream(full, None, None)(request)
            code = "OK"
            try:
                async for message in upstream:
                    answer = bytes(message)
                    self.record(
                        method=method,
                        event="message",
                        request=req,
                        response=describe_response(method, answer),
                    )
                    yield answer
            except grpc.aio.AioRpcError as e:
                code = e.code().name
                self.record(method=method, code=code, request=req, details=e.details())
                await context.abort(e.code(), e.details() or "")
            finally:
                upstream.cancel()
                self.record(method=method, event="close", code=code, request=req)

        return call


def _address(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return value


async def serve(listen: str, upstream: str, log_path: Path) -> None:
    with log_path.open("a") as log:
        channel = grpc.aio.insecure_channel(upstream)
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([Tap(channel, log)])
        server.add_insecure_port(listen)
        await server.start()
        print(f"grpctap: {listen} -> {upstream}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop(1)
        with contextlib.suppress(Exception):
            await channel.close(None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.interop.grpctap")
    parser.add_argument("--listen", type=_address, required=True)
    parser.add_argument("--upstream", type=_address, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.upstream, args.log))


if __name__ == "__main__":
    main()
