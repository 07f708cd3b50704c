"""The scaler trigger metadata: which HTTPScaledObject, and which metric, a ScaledObjectRef means.

KEDA passes a trigger's metadata to every RPC as ``scalerMetadata``; the operator writes these
keys into the ScaledObject it generates (and passes the same map to ``StreamIsActive`` and
``GetMetrics`` in standalone mode), so the scaler needs no API access:

- ``httpScaledObject``: the HTTPScaledObject's name (the KEDA HTTP add-on's key);
- ``namespace``: its namespace; default: the ScaledObjectRef's namespace;
- ``metric``: ``concurrency`` (default) or ``requestRate``;
- ``targetValue``: the target per replica, a positive number; default 100;
- ``window``: for requestRate the rate window, a duration (``1m``, ``30s``, or plain seconds),
  default 1m; for concurrency the averaging window of the metric (see below), default 10s;
- ``granularity``: the bucket size of that window, a duration; default 1s (coarsened to
  window/3600 when finer);
- ``activityWindow``: how long after its last request (begun or ended) a target still counts as
  active, a duration; default 1s. Requests shorter than the interceptors' count batch are never
  seen in flight; this window is what makes steady traffic of short requests look busy.
- ``interceptorRoute``: instead of ``httpScaledObject``, the name of an InterceptorRoute in the
  ScaledObjectRef's namespace (the add-on's key, written by the user into their own
  ScaledObject's ``external-push`` trigger). Its metrics are the route's
  ``spec.scalingMetric``, read by the scaler from the cluster (:func:`route_metrics`): one
  metric per kind it sets, named like the add-on's (``http_<name>_concurrency``,
  ``http_<name>_rate``); the other keys above are ignored for it.
- ``interceptorTargetPendingRequests``: instead of ``httpScaledObject``, the add-on's key for the
  interceptor's own autoscaling: concurrency summed over every target, this value the target.
- ``streamHeartbeat`` (StreamIsActive only): while the target is inactive, its state is re-sent
  at most this often, a duration; default (and floor): the scaler's ``stream_resend``. The
  wakeway operator asks for a third of its ``stream_idle_timeout`` and finds a dead connection
  by gRPC keepalive pings instead, so a quiet fleet of thousands costs few messages.

The concurrency metric is ``max(in flight now, time-average of in flight over window)``. The
time-average (from the interceptors' monotonic ``busy`` request-seconds) counts every request for
exactly the time it held a pod, so short requests that no sample sees still count, and by
Little's law it is what a per-replica concurrency target means; the current in-flight count as a
floor lets a burst scale up at once rather than after the window. A peak over the interval was
not chosen: one instant of many parallel 1 ms requests would ask for replicas nobody needs.

Other keys (KEDA's own ``scalerAddress``, ``enableTLS``...) are ignored. A bad value raises
:class:`MetadataError` naming the key; the servicer answers INVALID_ARGUMENT with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from wakeway.model.errors import ModelError
from wakeway.model.fields import parse_duration
from wakeway.model.httpso import (
    DEFAULT_RATE_GRANULARITY,
    DEFAULT_RATE_WINDOW,
    DEFAULT_TARGET_VALUE,
    HTTPScaledObject,
)

KEY_HTTPSO = "httpScaledObject"
KEY_INTERCEPTOR_ROUTE = "interceptorRoute"
KEY_NAMESPACE = "namespace"
KEY_METRIC = "metric"
KEY_TARGET_VALUE = "targetValue"
KEY_WINDOW = "window"
KEY_GRANULARITY = "granularity"
KEY_ACTIVITY_WINDOW = "activityWindow"
KEY_INTERCEPTOR_TARGET = "interceptorTargetPendingRequests"
KEY_STREAM_HEARTBEAT = "streamHeartbeat"

CONCURRENCY = "concurrency"
REQUEST_RATE = "requestRate"
ALL_TARGETS = "*"
"""The target key of the interceptor-wide metric (every target summed)."""

ACTIVITY_WINDOW = 1.0
"""Seconds a target stays active after its last request began or ended (``activityWindow``)."""
DEFAULT_CONCURRENCY_WINDOW = 10.0
"""Seconds over which the concurrency metric is time-averaged (``window`` of a concurrency)."""

# At most this many rate buckets per window: a finer granularity is coarsened to window/MAX_BUCKETS
# (memory stays bounded and every valid HTTPScaledObject is still served).
MAX_BUCKETS = 3600

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_INDEX_PREFIX = re.compile(r"^s\d+-")


class MetadataError(ValueError):
    """Trigger metadata that does not name an object or a metric; ``key`` is the culprit."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"scalerMetadata.{key}: {message}")


@dataclass(frozen=True, slots=True)
class MetricTarget:
    """What an RPC asks about: a target key and how its metric is computed."""

    key: str
    """``namespace/name`` of the HTTPScaledObject, or :data:`ALL_TARGETS`."""
    kind: Literal["concurrency", "requestRate"]
    target_value: float
    window: float = DEFAULT_RATE_WINDOW
    granularity: float = DEFAULT_RATE_GRANULARITY
    activity_window: float = ACTIVITY_WINDOW
    name: str = ""  # the metric's name when not the usual one (an InterceptorRoute's)

    @property
    def metric_name(self) -> str:
        """The name declared in GetMetricSpec (KEDA prefixes ``sN-`` for the HPA)."""
        if self.name:
            return self.name
        if self.key == ALL_TARGETS:
            return "http-interceptor-concurrency"
        namespace, _, name = self.key.partition("/")
        suffix = "concurrency" if self.kind == CONCURRENCY else "requestrate"
        return f"http-{namespace}-{name}-{suffix}"

    def accepts_metric_name(self, requested: str) -> bool:
        """True for our name, with or without KEDA's ``sN-`` prefix, or an empty name."""
        if not requested or requested == self.metric_name:
            return True
        return _INDEX_PREFIX.sub("", requested, count=1) == self.metric_name


def parse_metadata(metadata: Mapping[str, str], ref_namespace: str) -> MetricTarget:
    """The :class:`MetricTarget` a ScaledObjectRef means; raises :class:`MetadataError`."""
    name = metadata.get(KEY_HTTPSO, "").strip()
    if not name:
        if KEY_INTERCEPTOR_TARGET in metadata:
            target = _positive(metadata, KEY_INTERCEPTOR_TARGET, DEFAULT_TARGET_VALUE)
            return MetricTarget(
                ALL_TARGETS, "concurrency", target, *_windows(metadata, CONCURRENCY)
            )
        raise MetadataError(KEY_HTTPSO, "required: the name of the HTTPScaledObject")
    if not _NAME.match(name):
        raise MetadataError(KEY_HTTPSO, f"{name!r} is not a valid object name")
    namespace = metadata.get(KEY_NAMESPACE, "").strip() or ref_namespace
    if not namespace:
        raise MetadataError(KEY_NAMESPACE, "required when the ScaledObjectRef has no namespace")
    if not _NAME.match(namespace):
        raise MetadataError(KEY_NAMESPACE, f"{namespace!r} is not a valid namespace")
    key = f"{namespace}/{name}"

    kind = metadata.get(KEY_METRIC, CONCURRENCY).strip() or CONCURRENCY
    target = _positive(metadata, KEY_TARGET_VALUE, DEFAULT_TARGET_VALUE)
    if kind == CONCURRENCY:
        return MetricTarget(key, "concurrency", target, *_windows(metadata, kind))
    if kind != REQUEST_RATE:
        raise MetadataError(
            KEY_METRIC, f"must be {CONCURRENCY!r} or {REQUEST_RATE!r}, got {kind!r}"
        )
    return MetricTarget(key, "requestRate", target, *_windows(metadata, kind))


def route_key(metadata: Mapping[str, str], ref_namespace: str) -> str | None:
    """``namespace/name`` of the InterceptorRoute the metadata names, or None when it names
    none (then :func:`parse_metadata` reads it); raises :class:`MetadataError`."""
    if KEY_INTERCEPTOR_ROUTE not in metadata:
        return None
    name = metadata[KEY_INTERCEPTOR_ROUTE].strip()
    if not _NAME.match(name):
        raise MetadataError(KEY_INTERCEPTOR_ROUTE, f"{name!r} is not a valid object name")
    if not ref_namespace:
        raise MetadataError(KEY_INTERCEPTOR_ROUTE, "the ScaledObjectRef has no namespace")
    return f"{ref_namespace}/{name}"


def route_metrics(route: HTTPScaledObject) -> tuple[MetricTarget, ...]:
    """The metrics of a target read from an InterceptorRoute: one per kind it declares."""
    out: list[MetricTarget] = []
    for metric in route.metrics:
        if metric.kind == CONCURRENCY:
            window = DEFAULT_CONCURRENCY_WINDOW
            granularity = max(DEFAULT_RATE_GRANULARITY, window / MAX_BUCKETS)
            suffix = "concurrency"
        else:
            window = metric.window
            granularity = max(metric.granularity, window / MAX_BUCKETS)
            suffix = "rate"
        name = f"http_{route.name}_{suffix}"
        out.append(
            MetricTarget(
                route.key, metric.kind, metric.target_value, window, granularity, name=name
            )
        )
    return tuple(out)


def _windows(metadata: Mapping[str, str], kind: str) -> tuple[float, float, float]:
    """(window, granularity, activity window) of a metric, defaults applied and checked."""
    default = DEFAULT_RATE_WINDOW if kind == REQUEST_RATE else DEFAULT_CONCURRENCY_WINDOW
    window = _duration(metadata, KEY_WINDOW, default)
    granularity = _duration(metadata, KEY_GRANULARITY, DEFAULT_RATE_GRANULARITY)
    if granularity > window:
        raise MetadataError(KEY_WINDOW, "must not be shorter than the granularity")
    granularity = max(granularity, window / MAX_BUCKETS)
    return window, granularity, _duration(metadata, KEY_ACTIVITY_WINDOW, ACTIVITY_WINDOW)


def stream_heartbeat(metadata: Mapping[str, str]) -> float:
    """The ``streamHeartbeat`` asked for, in seconds; 0 when none."""
    return _duration(metadata, KEY_STREAM_HEARTBEAT, 0.0)


def scaler_metadata(httpso: HTTPScaledObject) -> dict[str, str]:
    """The trigger metadata that names ``httpso`` and its metric, for :func:`parse_metadata`."""
    metric = httpso.scaling_metric
    out = {
        KEY_HTTPSO: httpso.name,
        KEY_NAMESPACE: httpso.namespace,
        KEY_METRIC: metric.kind,
        KEY_TARGET_VALUE: _number(metric.target_value),
    }
    if metric.kind == REQUEST_RATE:
        out[KEY_WINDOW] = f"{_number(metric.window)}s"
        out[KEY_GRANULARITY] = f"{_number(metric.granularity)}s"
    return out


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _positive(metadata: Mapping[str, str], key: str, default: float) -> float:
    raw = metadata.get(key, "").strip()
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        raise MetadataError(key, f"{raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise MetadataError(key, f"must be a positive number, got {raw!r}")
    return value


def _duration(metadata: Mapping[str, str], key: str, default: float) -> float:
    raw = metadata.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)  # plain seconds
    except ValueError:
        value = None
    try:
        if value is None or not math.isfinite(value):
            value = parse_duration(raw, key)
    except ModelError as exc:
        raise MetadataError(key, exc.message) from None
    if value <= 0:
        raise MetadataError(key, "must be greater than zero")
    return value
