"""Global interceptor settings: every default in one frozen dataclass, parsed once.

Per-target values in an HTTPScaledObject (``spec.timeouts``, ``spec.coldStart``) override the
matching global default for that target only. :func:`settings_from_env` is the only place that
reads the environment; everything else receives an :class:`InterceptorSettings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from wakeway.model.settings import settings_from_env as read_env

ENV_PREFIX = "WAKEWAY_INTERCEPTOR_"


@dataclass(frozen=True, slots=True)
class InterceptorSettings:
    """Defaults for production; tests bind port 0 and shorten the timeouts."""

    # Listeners.
    listen_host: str = "0.0.0.0"
    listen_port: int = 8080
    admin_host: str = "0.0.0.0"
    admin_port: int = 9090
    # Upstream timeouts (seconds); a target's spec.timeouts overrides each one.
    connect_timeout: float = 5.0
    response_header_timeout: float = 60.0
    condition_wait: float = 20.0
    # An endpoint that refused a connection is skipped for this long (seconds): a pod being
    # removed can refuse before its EndpointSlice says so. The request, not yet sent, goes to
    # another ready endpoint or back to the cold-start gate instead of failing.
    refused_endpoint_skip: float = 2.0
    refused_endpoint_attempts: int = 3
    request_timeout: float | None = None
    # Cold-start gate: held requests per target (spec.coldStart.maxHeldRequests overrides) and
    # across all targets.
    max_held_per_target: int = 1000
    max_held_total: int = 10000
    # Client side limits.
    max_request_line: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    header_read_timeout: float = 10.0
    keepalive_timeout: float = 75.0
    # Body bytes buffered for a request that cannot be forwarded yet (held, connecting) before
    # reading from the client pauses.
    max_buffered_body: int = 65536
    # Shutdown.
    drain_timeout: float = 25.0
    # Response and request decoration.
    cold_start_header: bool = True
    via: bool = False
    # Upstream keep-alive pool: idle connections kept per (address, port), and how long.
    pool_size_per_upstream: int = 128
    pool_idle_timeout: float = 30.0
    # Count stream.
    counts_coalesce: float = 0.005
    counts_heartbeat: float = 5.0
    counts_queue_size: int = 256
    # Processes; only 1 is implemented (one uvloop process reaches the throughput goal).
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers != 1:
            raise ValueError("workers: only 1 is supported")
        for name in ("max_held_per_target", "max_held_total", "pool_size_per_upstream"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        for name in ("max_request_line", "max_header_bytes", "max_headers", "max_buffered_body"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        for fld in fields(self):
            value = getattr(self, fld.name)
            if isinstance(value, float) and value <= 0:
                raise ValueError(f"{fld.name}: must be greater than zero")


def settings_from_env(
    env: Mapping[str, str] | None = None, base: InterceptorSettings | None = None
) -> InterceptorSettings:
    """Settings from ``WAKEWAY_INTERCEPTOR_<FIELD>`` variables (e.g. ``..._CONDITION_WAIT=30``).

    Booleans accept true/false/1/0/yes/no; ``request_timeout`` accepts ``none``. An unknown or
    malformed value raises ``ValueError`` naming the variable.
    """
    return read_env(base or InterceptorSettings(), ENV_PREFIX, os.environ if env is None else env)
