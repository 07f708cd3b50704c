"""Operator settings: every default in one frozen dataclass, parsed once from the environment.

:func:`settings_from_env` is the only place that reads the environment; everything else receives
an :class:`OperatorSettings`. The README's "Operator" section lists every field with its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from wakeway.model.settings import route_identity_key
from wakeway.model.settings import settings_from_env as read_env

ENV_PREFIX = "WAKEWAY_OPERATOR_"
MODES = ("auto", "keda", "standalone")
# Variables the operator shares with the interceptor (same meaning, same spelling); the
# WAKEWAY_OPERATOR_ spelling of the field wins when both are set.
SHARED = {"WAKEWAY_INTERCEPTOR_SERVICE": "interceptor_service", "WAKEWAY_KUBECONFIG": "kubeconfig"}


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    # keda: generate KEDA ScaledObjects; standalone: scale through /scale ourselves;
    # auto: keda when the API server serves keda.sh/v1alpha1 scaledobjects (checked at start).
    mode: str = "auto"
    # Kubeconfig file; empty: the pod's ServiceAccount (in-cluster).
    kubeconfig: str = ""
    # Watch one namespace only; empty: every namespace (needs the ClusterRole).
    namespace: str = ""
    # The scaler's gRPC address: written into ScaledObjects (keda) and dialled (standalone).
    scaler_address: str = "wakeway-scaler.wakeway.svc:9091"
    # The interceptor's proxy Service, which bound HTTPRoute rules must send their traffic to:
    # namespace/name[:port] (no port: any). Shared: WAKEWAY_INTERCEPTOR_SERVICE.
    interceptor_service: str = "wakeway/wakeway-interceptor:8080"
    # The route identity HMAC key (shared with the interceptor: WAKEWAY_ROUTE_IDENTITY_KEY in
    # base64, or WAKEWAY_ROUTE_IDENTITY_KEY_FILE); None: routes need no identity stamp.
    route_identity_key: bytes | None = None
    # /livez and /readyz (ready after the first full sync); port 0: no health server.
    health_host: str = "0.0.0.0"
    health_port: int = 8081
    # Reconcile workers (one key is never reconciled by two at once).
    workers: int = 4
    # Requeue after a failed reconcile: doubles from min to max per key.
    retry_min: float = 0.1
    retry_max: float = 60.0
    # Every object is reconciled again at least this often (what no watch tells us: the
    # workload's replicas, a workload created after its HTTPScaledObject).
    resync: float = 60.0
    # Standalone: the HPA-style scale-down stabilisation window (seconds).
    scale_down_stabilization: float = 300.0
    # Standalone: how often GetMetrics is asked for objects with replicas above zero.
    metrics_interval: float = 5.0
    # Standalone: reconnect backoff of a StreamIsActive subscription, and the per-call timeout
    # of GetMetrics.
    stream_retry_min: float = 0.1
    stream_retry_max: float = 5.0
    grpc_timeout: float = 5.0
    # Standalone: a StreamIsActive that sends nothing for this long is taken as broken (the
    # scaler re-sends its state every 2 s by default: three missed) and reopened.
    stream_idle_timeout: float = 6.0
    # Standalone: the Active condition turns False only after this long without activity, so
    # bursts of traffic do not write status each time.
    active_condition_hold: float = 30.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        positive = (
            "retry_min",
            "resync",
            "metrics_interval",
            "stream_retry_min",
            "grpc_timeout",
            "stream_idle_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be greater than zero")
        if self.retry_max < self.retry_min:
            raise ValueError("retry_max: must not be less than retry_min")
        if self.stream_retry_max < self.stream_retry_min:
            raise ValueError("stream_retry_max: must not be less than stream_retry_min")
        if self.active_condition_hold < 0:
            raise ValueError("active_condition_hold: must not be negative")
        if self.scale_down_stabilization < 0:
            raise ValueError("scale_down_stabilization: must not be negative")
        if self.workers < 1:
            raise ValueError("workers: must be at least 1")
        parse_service_ref(self.interceptor_service)
        if self.route_identity_key is not None and len(self.route_identity_key) < 16:
            raise ValueError("route_identity_key: must be at least 16 bytes")
        if not 0 <= self.health_port <= 65535:
            raise ValueError("health_port: must be in 0..65535")
        if not self.scaler_address.rpartition(":")[2].isdigit():
            raise ValueError(f"scaler_address: {self.scaler_address!r} is not HOST:PORT")


def parse_service_ref(raw: str) -> tuple[str, str, int | None]:
    """``namespace/name[:port]`` as (namespace, name, port or None); raises ``ValueError``."""
    ref, _, port = raw.partition(":")
    namespace, slash, name = ref.partition("/")
    if not slash or not namespace or not name or (port and not port.isdigit()):
        raise ValueError(f"interceptor_service: {raw!r} is not namespace/name[:port]")
    return namespace, name, int(port) if port else None


def settings_from_env(
    env: Mapping[str, str] | None = None, base: OperatorSettings | None = None
) -> OperatorSettings:
    """Settings from ``WAKEWAY_OPERATOR_<FIELD>`` variables (e.g. ``..._MODE=keda``), plus the
    ones shared with the interceptor: ``WAKEWAY_INTERCEPTOR_SERVICE``, ``WAKEWAY_KUBECONFIG``,
    ``WAKEWAY_ROUTE_IDENTITY_KEY`` (base64) or ``WAKEWAY_ROUTE_IDENTITY_KEY_FILE`` (raw bytes).

    A malformed value raises ``ValueError`` naming the variable.
    """
    env = os.environ if env is None else env
    key = route_identity_key(env)
    return read_env(
        base or OperatorSettings(),
        ENV_PREFIX,
        env,
        aliases=SHARED,
        extra={} if key is None else {"route_identity_key": key},
    )
