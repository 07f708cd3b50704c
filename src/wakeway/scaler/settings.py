"""Scaler settings: every default in one frozen dataclass, parsed once from the environment.

:func:`settings_from_env` is the only place that reads the environment; everything else receives
a :class:`ScalerSettings`. The README's "Scaler" section lists every field with its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from wakeway.model.settings import settings_from_env as read_env

ENV_PREFIX = "WAKEWAY_SCALER_"


@dataclass(frozen=True, slots=True)
class ScalerSettings:
    """Defaults for production; tests bind port 0 and shorten the bounds."""

    # gRPC listener (KEDA's scalerAddress points here).
    listen_host: str = "0.0.0.0"
    listen_port: int = 9091
    # Interceptor admin addresses (host:port, comma-separated) for the static replica source.
    interceptors: str = ""
    # Or, in Kubernetes: the interceptor admin Service (in ``namespace``) whose EndpointSlices
    # list the replicas, and the name (or number) of its admin port.
    interceptor_service: str = ""
    namespace: str = ""
    interceptor_admin_port: str = "admin"
    # Kubeconfig for the Kubernetes source; empty: the pod's service account.
    kubeconfig: str = ""
    # A replica from which nothing arrived (not even a heartbeat) for this long is dropped and its
    # stream reopened; the interceptor sends a heartbeat after 5 s of silence by default.
    stale_after: float = 15.0
    # Reconnect backoff per replica: doubles from min to max, with +-jitter (a fraction).
    reconnect_min: float = 0.1
    reconnect_max: float = 5.0
    reconnect_jitter: float = 0.2
    # Connecting to a replica's admin port.
    connect_timeout: float = 2.0
    # StreamIsActive: changes are sent at once; the current state is re-sent at this interval
    # (KEDA acts on every message it receives, which keeps its last-active time fresh).
    stream_resend: float = 2.0
    # Concurrent StreamIsActive streams; beyond it new streams get RESOURCE_EXHAUSTED.
    max_streams: int = 10000
    # Longest count-stream line accepted from an interceptor (bytes).
    max_line_bytes: int = 4 * 1024 * 1024
    # Rate windows not asked about for this long are forgotten.
    window_idle: float = 600.0
    # Graceful stop: how long in-flight RPCs get.
    shutdown_grace: float = 2.0

    def __post_init__(self) -> None:
        for name in ("stale_after", "reconnect_min", "connect_timeout", "stream_resend"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be greater than zero")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max: must not be less than reconnect_min")
        if not 0 <= self.reconnect_jitter < 1:
            raise ValueError("reconnect_jitter: must be in [0, 1)")
        for name in ("max_streams", "max_line_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        if not 0 <= self.listen_port <= 65535:
            raise ValueError("listen_port: must be in 0..65535")

    @property
    def interceptor_addresses(self) -> tuple[str, ...]:
        return parse_addresses(self.interceptors)


def parse_addresses(raw: str) -> tuple[str, ...]:
    """``host:port,host:port`` (``[::1]:9090`` for IPv6) as a tuple; raises ``ValueError``."""
    out: list[str] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise ValueError(f"{item!r} is not HOST:PORT")
        out.append(item)
    return tuple(dict.fromkeys(out))


def settings_from_env(
    env: Mapping[str, str] | None = None, base: ScalerSettings | None = None
) -> ScalerSettings:
    """Settings from ``WAKEWAY_SCALER_<FIELD>`` variables (e.g. ``..._STALE_AFTER=30``).

    An unknown or malformed value raises ``ValueError`` naming the variable.
    """
    env = os.environ if env is None else env
    settings = read_env(base or ScalerSettings(), ENV_PREFIX, env)
    if settings.interceptors:
        try:
            parse_addresses(settings.interceptors)
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}INTERCEPTORS: {exc}") from None
    return settings
