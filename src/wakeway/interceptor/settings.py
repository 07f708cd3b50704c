"""Global interceptor settings: every default in one frozen dataclass, parsed once.

Per-target values in an HTTPScaledObject (``spec.timeouts``, ``spec.coldStart``) override the
matching global default for that target only. :func:`settings_from_env` and
:func:`kube_settings_from_env` are the only places that read the environment; everything else
receives an :class:`InterceptorSettings` (and, in Kubernetes mode, a :class:`KubeModeSettings`).
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
    parse_service_ref,
    port,
    route_identity_key,
    seconds,
    setting,
    variables,
)
from wakeway.model.settings import settings_from_env as read_env


def parse_cert_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``CERT:KEY,CERT:KEY`` (file paths) as (cert, key) pairs. Raises ``ValueError``."""
    pairs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        cert, colon, key = item.partition(":")
        if not colon or not cert or not key or ":" in key:
            raise ValueError(f"{item!r} is not CERT_FILE:KEY_FILE")
        pairs.append((cert, key))
    return tuple(pairs)


def parse_workers(text: str) -> int:
    """A number of worker processes; ``auto`` (or 0): one per core this process may use."""
    if text.strip().lower() == "auto":
        return 0
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number or auto") from None


def worker_count(workers: int) -> int:
    """The processes that serve the proxy listener: ``workers``, or for 0 the cores the
    process may run on (its CPU affinity, which a container's cpuset narrows)."""
    return workers or len(os.sched_getaffinity(0))


ENV_PREFIX = "WAKEWAY_INTERCEPTOR_"
KUBE_ENV_PREFIX = "WAKEWAY_"


@dataclass(frozen=True, slots=True)
class InterceptorSettings:
    """Defaults for production; tests bind port 0 and shorten the timeouts."""

    # Listeners.
    listen_host: str = "0.0.0.0"
    listen_port: int = port(8080)
    admin_host: str = "0.0.0.0"
    admin_port: int = port(9090)
    # Upstream timeouts (seconds); a target's spec.timeouts overrides each one.
    connect_timeout: float = seconds(5.0)
    response_header_timeout: float = seconds(60.0)
    condition_wait: float = seconds(20.0)
    # An endpoint that refused a connection is skipped for this long (seconds): a pod being
    # removed can refuse before its EndpointSlice says so. The request, not yet sent, goes to
    # another ready endpoint or back to the cold-start gate instead of failing.
    refused_endpoint_skip: float = seconds(2.0)
    refused_endpoint_attempts: int = count(3)
    # Early probes (seconds between rounds; none: off): while requests are held, connect to the
    # backend's endpoints that are not ready yet and forward to the first that accepts, before
    # Kubernetes lists it ready. Only for workloads whose open port means ready (.probe).
    early_probe_interval: float | None = setting(None, above=0)
    request_timeout: float | None = setting(None, above=0)
    # Cold-start gate: held requests per target (spec.coldStart.maxHeldRequests overrides) and
    # across all targets; at least 1, since the first held request is what wakes a target.
    max_held_per_target: int = count(1000)
    max_held_total: int = count(10000)
    # Client side limits.
    max_request_line: int = count(8192)
    max_header_bytes: int = count(32768)
    max_headers: int = count(100)
    header_read_timeout: float = seconds(10.0)
    keepalive_timeout: float = seconds(75.0)
    # Body bytes buffered for a request that cannot be forwarded yet (held, connecting) before
    # reading from the client pauses.
    max_buffered_body: int = count(65536)
    # HTTP/2 clients: streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_
    # STREAMS). Each stream's receive window is max_buffered_body.
    h2_max_concurrent_streams: int = count(100)
    # Shutdown.
    drain_timeout: float = seconds(25.0)
    # Response and request decoration.
    cold_start_header: bool = True
    via: bool = False
    # One JSON line per finished request on stdout (docs/observability.md#access-log).
    access_log: bool = False
    # Upstream keep-alive pool: idle connections kept per (address, port), and how long.
    pool_size_per_upstream: int = setting(128, min=0)
    pool_idle_timeout: float = seconds(30.0)
    # Count stream.
    counts_coalesce: float = seconds(0.005)
    counts_heartbeat: float = seconds(5.0)
    counts_queue_size: int = count(256)
    # TLS on the proxy listener (docs/protocols.md#tls): certificate and key files as
    # "CERT:KEY,CERT:KEY" (the first pair is the default certificate); none: plain TCP.
    tls_certificates: tuple[tuple[str, str], ...] = setting((), parse=parse_cert_pairs)
    # How often the certificate files are checked for changes (seconds).
    tls_reload_interval: float = seconds(10.0)
    # Kubernetes mode: TLS with the kubernetes.io/tls Secrets of the interceptor's own
    # namespace labelled wakeway.dev/tls-certificate, watched (instead of tls_certificates).
    tls_secrets: bool = False
    # Processes serving the proxy listener, each with its own event loop; 0 ("auto"): one per
    # core the process may use. Above 1 this process keeps the admin port, the count stream
    # (the sum over the workers) and the routing table, which it ships to the workers.
    workers: int = setting(1, min=0, max=256, parse=parse_workers)
    # workers > 1: "reuseport": each worker listens on its own SO_REUSEPORT socket (the kernel
    # spreads connections evenly); "shared": all accept on one inherited listening socket.
    workers_listener: str = setting("reuseport", choices=("reuseport", "shared"))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.tls_secrets and self.workers != 1:
            raise ValueError(
                "tls_secrets: only with workers=1 (the Secrets are watched in one process)"
            )
        if self.tls_secrets and self.tls_certificates:
            raise ValueError("tls_secrets: not together with tls_certificates; choose one")


@dataclass(frozen=True, slots=True)
class KubeModeSettings:
    """What Kubernetes mode adds: ``WAKEWAY_<FIELD>`` variables, shared with the operator."""

    kubeconfig: str | None = None  # None: the pod's service account
    # The interceptor's proxy Service, as backendRefs name it (port None: any port).
    interceptor_service: ServiceRef = setting(INTERCEPTOR_SERVICE, parse=parse_service_ref)
    # Route identity HMAC key (WAKEWAY_ROUTE_IDENTITY_KEY[_FILE]); None turns identity off.
    identity_key: bytes | None = setting(None, check=check_identity_key, env=False)
    debounce: float = setting(0.01, min=0, env=False)

    def __post_init__(self) -> None:
        check_fields(self)


def settings_from_env(
    env: Mapping[str, str] | None = None, base: InterceptorSettings | None = None
) -> InterceptorSettings:
    """Settings from ``WAKEWAY_INTERCEPTOR_<FIELD>`` variables (e.g. ``..._CONDITION_WAIT=30``).

    Booleans accept true/false/1/0/yes/no; ``request_timeout`` accepts ``none``. An unknown
    ``WAKEWAY_*`` variable (not this component's, not shared, not under the scaler's or the
    operator's prefix), or a malformed or out-of-range value, raises
    :class:`~wakeway.model.settings.SettingsError` naming the variable.
    """
    env = os.environ if env is None else env
    kube_variables = variables(KubeModeSettings, KUBE_ENV_PREFIX)
    return read_env(base or InterceptorSettings(), ENV_PREFIX, env, known=kube_variables)


def kube_settings_from_env(env: Mapping[str, str] | None = None) -> KubeModeSettings:
    """``WAKEWAY_KUBECONFIG``, ``WAKEWAY_INTERCEPTOR_SERVICE`` (namespace/name[:port]),
    ``WAKEWAY_ROUTE_IDENTITY_KEY`` (base64) or ``WAKEWAY_ROUTE_IDENTITY_KEY_FILE`` (raw bytes,
    e.g. a mounted Secret). A malformed value raises ``SettingsError`` naming the variable."""
    env = os.environ if env is None else env
    key = route_identity_key(env)
    extra = {} if key is None else {"identity_key": key}
    return read_env(KubeModeSettings(), KUBE_ENV_PREFIX, env, extra=extra, strict=False)
