"""Run one wakeway interceptor for the load tests: every host routed to one backend address.

Usage: python loadtest/bench_proxy_server.py PROXY_PORT ADMIN_PORT [BACKEND_PORT]
Without BACKEND_PORT the target stays cold (no endpoint), so every request is held: that is
how held_rss.py measures memory per held request. Prints "ready" once listening.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sys

import uvloop

from wakeway.gateway.request import Request
from wakeway.interceptor import Interceptor, InterceptorSettings
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject

TARGET = parse_httpscaledobject(
    {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "bench", "namespace": "bench"},
        "spec": {
            "scaleTargetRef": {"name": "bench", "service": "backend", "port": 80},
            "timeouts": {"conditionWait": "10m"},
            "coldStart": {"maxHeldRequests": 1000000},
        },
    }
)


class OneTarget:
    def lookup(self, req: Request) -> HTTPScaledObject | None:
        return TARGET


async def serve(proxy_port: int, admin_port: int, backend_port: int | None) -> None:
    settings = InterceptorSettings(
        listen_host="127.0.0.1",
        listen_port=proxy_port,
        admin_host="127.0.0.1",
        admin_port=admin_port,
        max_held_total=1000000,
        header_read_timeout=600.0,
    )
    interceptor = Interceptor(settings)
    await interceptor.start()
    interceptor.set_router(OneTarget())
    if backend_port is not None:
        interceptor.set_endpoints(
            {TARGET.backend.key(TARGET.namespace): [("127.0.0.1", backend_port)]}
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await interceptor.drain_and_stop(drain_timeout=1.0)


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = [int(a) for a in sys.argv[1:]]
    backend = args[2] if len(args) > 2 else None
    uvloop.run(serve(args[0], args[1], backend))


if __name__ == "__main__":
    main()
