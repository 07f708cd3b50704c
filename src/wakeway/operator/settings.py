"""Operator settings: every default in one frozen dataclass, parsed once from the environment.

:func:`settings_from_env` is the only place that reads the environment; everything else receives
an :class:`OperatorSettings`. docs/operator.md ("Settings") lists every field with its default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from wakeway.model.settings import (
    INTERCEPTOR_SERVICE,
    ServiceRef,
    check_fields,
    check_identity_key,
    count,
    parse_host_port,
    parse_service_ref,
    port,
    route_identity_key,
    seconds,
    setting,
)
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
    mode: str = setting("auto", choices=MODES)
    # Kubeconfig file; None: the pod's ServiceAccount (in-cluster).
    kubeconfig: str | None = None
    # Watch one namespace only; None: every namespace (needs the ClusterRole).
    namespace: str | None = None
    # The scaler's gRPC address: written into ScaledObjects (keda) and dialled (standalone).
    scaler_address: str = setting("wakeway-scaler.wakeway.svc:9091", check=parse_host_port)
    # The interceptor's proxy Service, which bound HTTPRoute rules must send their traffic to:
    # namespace/name[:port] (no port: any). Shared: WAKEWAY_INTERCEPTOR_SERVICE.
    interceptor_service: ServiceRef = setting(INTERCEPTOR_SERVICE, parse=parse_service_ref)
    # The route identity HMAC key (shared with the interceptor: WAKEWAY_ROUTE_IDENTITY_KEY in
    # base64, or WAKEWAY_ROUTE_IDENTITY_KEY_FILE); None: routes need no identity stamp.
    route_identity_key: bytes | None = setting(None, check=check_identity_key, env=False)
    # /livez and /readyz (ready after the first full sync); port 0: no health server.
    health_host: str = "0.0.0.0"
    health_port: int = port(8081)
    # Reconcile workers (one key is never reconciled by two at once). A pass mostly waits on
    # the API server, so thousands of objects sync only with many passes in flight.
    workers: int = count(16)
    # Requeue after a failed reconcile: doubles from min to max per key.
    retry_min: float = seconds(0.1)
    retry_max: float = seconds(60.0)
    # How often to look for what no watch tells us: a workload created after its
    # HTTPScaledObject (looked for every resync while missing), or replicas changed by someone
    # else (the workload's /scale is read again once it is workload_refresh old).
    resync: float = seconds(60.0)
    workload_refresh: float = seconds(600.0)
    # Route bindings are rebuilt once per change of HTTPScaledObjects, HTTPRoutes or
    # ReferenceGrants, this long (or the last build's duration, if longer) after the first.
    bindings_debounce: float = seconds(0.05)
    # Standalone: the HPA-style scale-down stabilisation window (seconds).
    scale_down_stabilization: float = setting(300.0, min=0)
    # Standalone: how often GetMetrics is asked for objects with replicas above zero.
    metrics_interval: float = seconds(5.0)
    # Standalone: reconnect backoff of a StreamIsActive subscription, and the per-call timeout
    # of GetMetrics.
    stream_retry_min: float = seconds(0.1)
    stream_retry_max: float = seconds(5.0)
    grpc_timeout: float = seconds(5.0)
    # Standalone: a StreamIsActive that sends nothing for this long is taken as broken and
    # reopened; the scaler is asked to re-send an inactive state every third of it
    # (streamHeartbeat), so a quiet fleet costs few messages. A dead connection is found
    # sooner by keepalive pings: one every stream_keepalive, closed when one goes unanswered
    # for as long.
    stream_idle_timeout: float = seconds(300.0)
    stream_keepalive: float = seconds(3.0)
    # Standalone: the Active condition turns False only after this long without activity, so
    # bursts of traffic do not write status each time.
    active_condition_hold: float = setting(30.0, min=0)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.retry_max < self.retry_min:
            raise ValueError("retry_max: must not be less than retry_min")
        if self.stream_retry_max < self.stream_retry_min:
            raise ValueError("stream_retry_max: must not be less than stream_retry_min")


def settings_from_env(
    env: Mapping[str, str] | None = None, base: OperatorSettings | None = None
) -> OperatorSettings:
    """Settings from ``WAKEWAY_OPERATOR_<FIELD>`` variables (e.g. ``..._MODE=keda``), plus the
    ones shared with the interceptor: ``WAKEWAY_INTERCEPTOR_SERVICE``, ``WAKEWAY_KUBECONFIG``,
    ``WAKEWAY_ROUTE_IDENTITY_KEY`` (base64) or ``WAKEWAY_ROUTE_IDENTITY_KEY_FILE`` (raw bytes).

    An unknown ``WAKEWAY_*`` variable (not this component's, not shared, not under the
    interceptor's or the scaler's prefix), or a malformed or out-of-range value, raises
    :class:`~wakeway.model.settings.SettingsError` naming the variable.
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
