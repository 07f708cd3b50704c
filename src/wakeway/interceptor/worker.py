"""One worker process of an interceptor with ``workers`` > 1 (``python -m`` this module FD).

Started by the primary (:mod:`.workers`) with one end of a Unix socket pair as file descriptor
``FD``. It serves the proxy listener with an :class:`~.server.Interceptor` of its own (no admin
port), applies the routing tables, endpoint views and held-request answers the primary sends,
and reports its own counts (a snapshot, then each coalesced change; a wake at once) with the
targets it saw go cold. SIGINT and SIGTERM are left to the primary, which drains every worker;
if the primary goes away, the worker drains and exits by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import sys
import time
from dataclasses import replace
from typing import Any

from wakeway.model import logs
from wakeway.model.httpso import HTTPScaledObject
from wakeway.observe import accesslog, tracing

from .server import Interceptor
from .settings import InterceptorSettings
from .stream import CountSubscription
from .workers import frame, read_message, to_wire

log = logging.getLogger("wakeway.interceptor.worker")

REPORT_COALESCE = 0.025  # seconds


def _listener(spec: tuple[Any, ...], settings: InterceptorSettings) -> socket.socket:
    if spec[0] == "fd":
        return socket.socket(fileno=spec[1])
    _, family, port = spec
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((settings.listen_host, port))
    return sock


class _Reporter:
    """Sends this worker's counts to the primary: every item of its own count stream."""

    def __init__(self, writer: asyncio.StreamWriter, interceptor: Interceptor) -> None:
        self.writer = writer
        self.interceptor = interceptor
        self.cold: list[HTTPScaledObject] = []
        interceptor.on_cold(self._cold)

    def _cold(self, target: HTTPScaledObject) -> None:
        self.cold.append(target)  # sent with the wake, which the count stream sends at once

    def send(self, kind: str, counts: dict[str, Any]) -> None:
        cold, self.cold = self.cold, []
        self.writer.write(frame(("counts", kind, time.monotonic(), counts, cold)))

    async def run(self, sub: CountSubscription) -> None:
        async for update in sub:
            self.send(update.kind, to_wire(update.counts))


async def serve(fd: int) -> None:
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
    init = await read_message(reader)
    _, wid, settings, spec, level, fmt = init
    logs.configure(level, fmt)
    if settings.access_log:
        accesslog.enable()
    if tracing.wanted(os.environ):
        with contextlib.suppress(ValueError):  # the primary said why already
            tracing.enable("wakeway-interceptor")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: None)  # the primary drains the workers
    # Reports to the primary are coalesced longer than the primary's own stream (a wake still
    # goes at once): each one is a write that wakes another process.
    coalesce = max(settings.counts_coalesce, REPORT_COALESCE)
    settings = replace(settings, workers=1, counts_coalesce=coalesce)
    interceptor = Interceptor(settings, listener=_listener(spec, settings), admin=False)
    reporter = _Reporter(writer, interceptor)
    await interceptor.start()
    sub = interceptor.subscribe()
    reporting = asyncio.create_task(reporter.run(sub))
    writer.write(frame(("ready",)))
    drain_timeout: float | None = None
    while True:
        try:
            message = await read_message(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            log.warning("interceptor worker %d: the primary is gone; draining", wid)
            break
        kind = message[0]
        if kind == "router":
            # Unpickled in a thread: a large table then does not stop this loop for long.
            interceptor.set_router(await asyncio.to_thread(pickle.loads, message[2]))
            writer.write(frame(("router_ok", message[1])))
        elif kind == "endpoints":
            interceptor.set_endpoints(message[1], message[2], message[3])
        elif kind == "fail":
            interceptor.fail_held(message[1], message[2], message[3])
        elif kind == "metrics":
            families = list(interceptor.registry.collect())
            writer.write(frame(("metrics", message[1], families)))
        elif kind == "drain":
            drain_timeout = message[1]
            break
    await interceptor.drain_and_stop(drain_timeout)
    await reporting  # the stream ends when the interceptor stops; what it had is sent
    reporter.send("snapshot", to_wire(interceptor.counts()))
    writer.write(frame(("bye",)))
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


def main(argv: list[str]) -> int:
    import uvloop

    uvloop.run(serve(int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
