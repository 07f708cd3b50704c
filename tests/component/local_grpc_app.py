"""A gRPC workload for local-mode tests: a server-streaming call that ticks until it is done.

python3 local_grpc_app.py --port P

``/wakeway.test.Ticks/Tick`` takes the number of ticks as ASCII digits and sends ``b"tick"``
every 0.1 s that many times. Messages are raw bytes (no generated code).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import grpc

SERVICE = "wakeway.test.Ticks"
INTERVAL = 0.1


def raw(message: bytes) -> bytes:
    return message


async def tick(
    request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    for _ in range(int(request)):
        await asyncio.sleep(INTERVAL)
        yield b"tick"


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_stream_rpc_method_handler(tick, raw, raw)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Tick": handler}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
