"""Scaler settings: every default in one frozen dataclass, parsed once from the environment.

:func:`settings_from_env` is the only place that reads the environment; everything else receives
a :class:`ScalerSettings`. docs/scaler.md ("Scaler settings") lists every field with its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from wakeway.model.settings import (
    check_fields,
    count,
    parse_addresses,
    parse_host_port,
    port,
    seconds,
    setting,
)
from wakeway.model.settings import settings_from_env as read_env

ENV_PREFIX = "WAKEWAY_SCALER_"


def _addresses(addresses: tuple[str, ...]) -> None:
    for address in addresses:
        parse_host_port(address)


@dataclass(frozen=True, slots=True)
class ScalerSettings:
    """Defaults for production; tests bind port 0 and shorten the bounds."""

    # gRPC listener (KEDA's scalerAddress points here).
    listen_host: str = "0.0.0.0"
    listen_port: int = port(9091)
    # Interceptor admin addresses (host:port, comma-separated in the variable) for the static
    # replica source.
    interceptors: tuple[str, ...] = setting((), parse=parse_addresses, check=_addresses)
    # Or, in Kubernetes: the interceptor admin Service (in ``namespace``) whose EndpointSlices
    # list the replicas, and the name (or number) of its admin port.
    interceptor_service: str | None = None
    namespace: str | None = None
    interceptor_admin_port: str = "admin"
    # Kubeconfig for the Kubernetes source; None: the pod's service account.
    kubeconfig: str | None = None
    # A replica from which nothing arrived (not even a heartbeat) for this long is dropped and its
    # stream reopened; the interceptor sends a heartbeat after 5 s of silence by default.
    stale_after: float = seconds(15.0)
    # Reconnect backoff per replica: doubles from min to max, with +-jitter (a fraction).
    reconnect_min: float = seconds(0.1)
    reconnect_max: float = seconds(5.0)
    reconnect_jitter: float = setting(0.2, min=0, below=1)
    # Connecting to a replica's admin port.
    connect_timeout: float = seconds(2.0)
    # StreamIsActive: changes are sent at once; the current state is re-sent at this interval
    # (KEDA acts on every message it receives, which keeps its last-active time fresh).
    stream_resend: float = seconds(2.0)
    # Concurrent StreamIsActive streams; beyond it new streams get RESOURCE_EXHAUSTED.
    max_streams: int = count(10000)
    # Longest count-stream line accepted from an interceptor (bytes).
    max_line_bytes: int = count(4 * 1024 * 1024)
    # Rate windows not asked about for this long are forgotten.
    window_idle: float = seconds(600.0)
    # Prometheus /metrics (and /livez) over HTTP; port 0: not served.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = port(9092)
    # Graceful stop: how long in-flight RPCs get.
    shutdown_grace: float = setting(2.0, min=0)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max: must not be less than reconnect_min")


def settings_from_env(
    env: Mapping[str, str] | None = None, base: ScalerSettings | None = None
) -> ScalerSettings:
    """Settings from ``WAKEWAY_SCALER_<FIELD>`` variables (e.g. ``..._STALE_AFTER=30``).

    An unknown ``WAKEWAY_*`` variable (not this component's, not shared, not under the
    interceptor's or the operator's prefix), or a malformed or out-of-range value, raises
    :class:`~wakeway.model.settings.SettingsError` naming the variable.
    """
    return read_env(base or ScalerSettings(), ENV_PREFIX, os.environ if env is None else env)
