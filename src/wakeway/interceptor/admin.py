"""The admin port (aiohttp): liveness, readiness, Prometheus metrics and the count stream.

``GET /counts`` streams newline-delimited JSON (``application/x-ndjson``), one object per line:

- ``{"type": "snapshot", "seq": 1, "time": T, "wake": false, "targets": {KEY: COUNTS, ...}}``
  first, with every target this interceptor has seen;
- ``{"type": "change", "seq": N, "time": T, "wake": W, "targets": {KEY: COUNTS, ...}}`` with
  only the targets that changed, coalesced within ``counts_coalesce`` seconds; ``wake`` is true
  (and the line is sent at once, not coalesced) when a target went from 0 to 1 held request;
- ``{"type": "heartbeat", "seq": N, "time": T}`` after ``counts_heartbeat`` seconds of silence,
  where ``N`` is the ``seq`` of the last snapshot or change line (nothing was missed).

``KEY`` is the HTTPScaledObject's ``namespace/name``; ``COUNTS`` is
``{"inFlight": int, "held": int, "requests": int, "busy": float}``: ``requests`` and ``busy``
(request-seconds in flight, the integral of ``inFlight``) are monotonic, so a reader computes a
rate and an average concurrency from two lines, and sees requests that began and ended between
two lines. ``time`` is this interceptor's monotonic clock in seconds. A snapshot may
appear again mid-stream when the reader fell behind; it replaces everything known before.
"""

from __future__ import annotations

import time
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.registry import CollectorRegistry

from .counts import heartbeat_line
from .settings import InterceptorSettings
from .stream import CountSubscription


class Served(Protocol):
    """What the admin port shows of an interceptor (``server.Interceptor``)."""

    @property
    def settings(self) -> InterceptorSettings: ...
    @property
    def ready(self) -> bool: ...
    @property
    def draining(self) -> bool: ...
    @property
    def registry(self) -> CollectorRegistry: ...
    async def metrics_text(self) -> bytes: ...
    def subscribe(self) -> CountSubscription: ...


INTERCEPTOR_KEY: web.AppKey[Served] = web.AppKey("interceptor")


def build_admin_app(interceptor: Served) -> web.Application:
    app = web.Application()
    app[INTERCEPTOR_KEY] = interceptor
    app.router.add_get("/livez", _livez)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/counts", _counts)
    return app


async def _livez(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    interceptor = request.app[INTERCEPTOR_KEY]
    if interceptor.ready:
        return web.Response(text="ready\n")
    why = "draining" if interceptor.draining else "no routing table loaded yet"
    return web.Response(status=503, text=f"not ready: {why}\n")


async def _metrics(request: web.Request) -> web.Response:
    interceptor = request.app[INTERCEPTOR_KEY]
    body = await interceptor.metrics_text()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _counts(request: web.Request) -> web.StreamResponse:
    interceptor = request.app[INTERCEPTOR_KEY]
    heartbeat = interceptor.settings.counts_heartbeat
    response = web.StreamResponse(
        headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    sub = interceptor.subscribe()
    seq = 0
    try:
        while True:
            try:
                update = await sub.get(within=heartbeat)
            except TimeoutError:
                await response.write(heartbeat_line(seq, time.monotonic()))
                continue
            except StopAsyncIteration:
                break
            seq = update.seq
            await response.write(update.to_json_line(time.monotonic()))
    except ConnectionResetError:
        pass  # the subscriber went away
    finally:
        sub.close()
    return response
