"""HTTPScaledObject (``http.keda.sh/v1alpha1``): a compatible superset of the KEDA HTTP add-on's.

Every manifest valid for the add-on parses here with the same meaning. Our additions live under
``spec.routes`` (binding to HTTPRoutes), ``spec.coldStart`` (hold limits, placeholder, the
cold-start response header), ``spec.warmWindows`` (kept warm by schedule),
``spec.wakeExclusions`` and ``spec.maintenance`` (requests answered without waking anything) and
extra keys of ``spec.timeouts`` (connect, request).
Durations given as ``None`` mean "the interceptor's global default".

Slightly over 400 lines: the parser of every field of the spec, in the CRD's order, in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wakeway.model import fields as f
from wakeway.model.errors import ModelError
from wakeway.model.exclusions import (
    HeaderRule,
    Maintenance,
    WakeExclusion,
    parse_header_rules,
    parse_maintenance,
    parse_wake_exclusions,
)
from wakeway.model.meta import ObjectMeta, parse_meta
from wakeway.model.warm import WarmWindow, parse_warm_windows

API_VERSION = "http.keda.sh/v1alpha1"
KIND = "HTTPScaledObject"
SKIP_SCALEDOBJECT_ANNOTATION = "httpscaledobject.keda.sh/skip-scaledobject-creation"
LOCAL_API_VERSION = "local.wakeway.dev/v1alpha1"
LOCAL_WORKLOAD_KIND = "LocalWorkload"

DEFAULT_MAX_REPLICAS = 100
DEFAULT_SCALEDOWN_PERIOD = 300
DEFAULT_TARGET_VALUE = 100
DEFAULT_RATE_WINDOW = 60.0
DEFAULT_RATE_GRANULARITY = 1.0
DEFAULT_FAILOVER_TIMEOUT = 30.0
DEFAULT_PLACEHOLDER_REFRESH = 2
PLACEHOLDER_BODY = "The service is starting; please retry in a moment.\n"
PLACEHOLDER_CONTENT_TYPE = "text/plain; charset=utf-8"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class PortRef:
    """A Service and its port, by number or by name (exactly one of the two)."""

    service: str
    port: int | None = None
    port_name: str | None = None

    def describe(self) -> str:
        if self.port is None and self.port_name is None:
            return self.service  # a local workload: its one port
        return f"{self.service}:{self.port if self.port is not None else self.port_name}"

    def key(self, namespace: str) -> str:
        """The endpoint-view key of this backend: ``namespace/service:port-or-name``."""
        return f"{namespace}/{self.describe()}"


@dataclass(frozen=True, slots=True)
class ScaleTargetRef:
    name: str
    kind: str
    api_version: str
    backend: PortRef


@dataclass(frozen=True, slots=True)
class FailoverRef:
    backend: PortRef
    timeout: float = DEFAULT_FAILOVER_TIMEOUT


@dataclass(frozen=True, slots=True)
class ScalingMetric:
    kind: Literal["concurrency", "requestRate"]
    target_value: float
    window: float = DEFAULT_RATE_WINDOW
    granularity: float = DEFAULT_RATE_GRANULARITY


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-target overrides; ``None`` means the interceptor's global default."""

    condition_wait: float | None = None
    response_header: float | None = None
    connect: float | None = None
    request: float | None = None


@dataclass(frozen=True, slots=True)
class Placeholder:
    """What a held request gets at the readiness deadline when there is no failover.

    ``immediate`` (an InterceptorRoute's ``coldStart.placeholder``): the answer is given at
    once, as the held request wakes the target, exactly as written (``status``, ``body``,
    ``headers``), without the self-refreshing page for browsers."""

    enabled: bool = False
    status: int = 503
    body: str = PLACEHOLDER_BODY
    content_type: str = PLACEHOLDER_CONTENT_TYPE
    refresh_seconds: int = DEFAULT_PLACEHOLDER_REFRESH
    immediate: bool = False
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ColdStart:
    max_held_requests: int | None = None
    placeholder: Placeholder = field(default_factory=Placeholder)
    response_header: bool = True


@dataclass(frozen=True, slots=True)
class RouteBinding:
    """An HTTPRoute (optionally one named rule of it) whose traffic this object receives."""

    name: str
    namespace: str
    rule_name: str | None = None

    @property
    def route_key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class MatchRule:
    """One set of request matchers: any host, any path prefix, every header (the add-on's)."""

    hosts: tuple[str, ...] = ()
    path_prefixes: tuple[str, ...] = ()
    headers: tuple[HeaderRule, ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPScaledObject:
    """A target: where matching requests go, how it is held and counted, and what scales it.

    Read from an HTTPScaledObject, or from an InterceptorRoute (``source``, see
    :mod:`wakeway.model.interceptorroute`), which has several match ``rules``, may declare
    both metrics (``scaling_metrics``) and names no workload: the user's own KEDA ScaledObject
    scales it."""

    meta: ObjectMeta
    hosts: tuple[str, ...]
    path_prefixes: tuple[str, ...]
    headers: tuple[HeaderRule, ...]
    scale_target: ScaleTargetRef
    min_replicas: int = 0
    max_replicas: int = DEFAULT_MAX_REPLICAS
    scaling_metric: ScalingMetric = field(
        default_factory=lambda: ScalingMetric("concurrency", DEFAULT_TARGET_VALUE)
    )
    scaledown_period: int = DEFAULT_SCALEDOWN_PERIOD
    initial_cooldown_period: int = 0
    failover: FailoverRef | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    cold_start: ColdStart = field(default_factory=ColdStart)
    routes: tuple[RouteBinding, ...] = ()
    warm_windows: tuple[WarmWindow, ...] = ()
    wake_exclusions: tuple[WakeExclusion, ...] = ()
    maintenance: Maintenance = field(default_factory=Maintenance)
    source: str = KIND
    rules: tuple[MatchRule, ...] | None = None  # None: hosts/pathPrefixes/headers
    scaling_metrics: tuple[ScalingMetric, ...] = ()  # empty: (scaling_metric,)

    @property
    def match_rules(self) -> tuple[MatchRule, ...]:
        """Every set of matchers that routes requests here; none when it is routed only
        through bound HTTPRoutes (``routes`` without hosts or path prefixes)."""
        if self.rules is not None:
            return self.rules
        if self.routes and not self.hosts and not self.path_prefixes:
            return ()
        return (MatchRule(self.hosts, self.path_prefixes, self.headers),)

    @property
    def metrics(self) -> tuple[ScalingMetric, ...]:
        return self.scaling_metrics or (self.scaling_metric,)

    @property
    def scaled_by_keda_only(self) -> bool:
        """An InterceptorRoute: only the user's ScaledObject scales it; no workload is named."""
        return self.source != KIND

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def backend(self) -> PortRef:
        return self.scale_target.backend

    @property
    def skip_scaledobject(self) -> bool:
        return self.meta.annotations.get(SKIP_SCALEDOBJECT_ANNOTATION, "").lower() == "true"


def parse_httpscaledobject(
    doc: Mapping[str, Any], default_namespace: str = "default"
) -> HTTPScaledObject:
    """Parse and validate one HTTPScaledObject document, strictly: one :class:`ModelError`
    lists every problem, each naming its field path, an unknown field among them."""
    return f.parse_document(doc, lambda d: _parse(d, default_namespace), known=("status",))


def _parse(doc: Mapping[str, Any], default_namespace: str) -> HTTPScaledObject:
    api_version = doc.get("apiVersion")
    if api_version != API_VERSION:
        raise ModelError("apiVersion", f"must be {API_VERSION!r}, got {api_version!r}")
    if doc.get("kind") != KIND:
        raise ModelError("kind", f"must be {KIND!r}, got {doc.get('kind')!r}")
    no_meta = ObjectMeta(default_namespace, "")
    meta = f.guard(doc, "metadata", lambda: parse_meta(doc, default_namespace), no_meta)
    spec = f.req_mapping(doc, "spec", "")
    p = "spec"
    # Each field is read on its own (f.guard), so one run reports every problem.
    min_r, max_r = f.guard(spec, "replicas", lambda: _replicas(spec, p), (0, 1))
    return HTTPScaledObject(
        meta=meta,
        hosts=f.guard(spec, "hosts", lambda: _hosts(spec, p), ()),
        path_prefixes=f.guard(spec, "pathPrefixes", lambda: _path_prefixes(spec, p), ()),
        headers=f.guard(spec, "headers", lambda: _headers(spec, p), ()),
        scale_target=f.guard(spec, "scaleTargetRef", lambda: _scale_target(spec, p), _NO_TARGET),
        min_replicas=min_r,
        max_replicas=max_r,
        scaling_metric=f.guard(
            spec,
            ("scalingMetric", "targetPendingRequests"),
            lambda: _scaling_metric(spec, p),
            ScalingMetric("concurrency", DEFAULT_TARGET_VALUE),
        ),
        scaledown_period=f.guard(
            spec,
            "scaledownPeriod",
            lambda: f.opt_int(spec, "scaledownPeriod", p, DEFAULT_SCALEDOWN_PERIOD, minimum=0),
            DEFAULT_SCALEDOWN_PERIOD,
        ),
        initial_cooldown_period=f.guard(
            spec,
            "initialCooldownPeriod",
            lambda: f.opt_int(spec, "initialCooldownPeriod", p, 0, minimum=0),
            0,
        ),
        failover=f.guard(spec, "coldStartTimeoutFailoverRef", lambda: _failover(spec, p), None),
        timeouts=f.guard(spec, "timeouts", lambda: _timeouts(spec, p), Timeouts()),
        cold_start=f.guard(spec, "coldStart", lambda: _cold_start(spec, p), ColdStart()),
        routes=f.guard(spec, "routes", lambda: _routes(spec, p, meta.namespace), ()),
        warm_windows=f.guard(spec, "warmWindows", lambda: parse_warm_windows(spec, p, max_r), ()),
        wake_exclusions=f.guard(spec, "wakeExclusions", lambda: parse_wake_exclusions(spec, p), ()),
        maintenance=f.guard(spec, "maintenance", lambda: parse_maintenance(spec, p), Maintenance()),
    )


_NO_TARGET = ScaleTargetRef("", "", "", PortRef(""))


def _replicas(spec: Mapping[str, Any], p: str) -> tuple[int, int]:
    replicas = f.opt_mapping(spec, "replicas", p) or {}
    min_r = f.opt_int(replicas, "min", "spec.replicas", 0, minimum=0)
    max_r = f.opt_int(replicas, "max", "spec.replicas", DEFAULT_MAX_REPLICAS, minimum=1)
    if min_r > max_r:
        raise ModelError("spec.replicas", f"min ({min_r}) must not be greater than max ({max_r})")
    return min_r, max_r


def _hosts(spec: Mapping[str, Any], p: str) -> tuple[str, ...]:
    return tuple(f.each(spec, "hosts", p, parse_host))


def parse_host(raw: Any, path: str) -> str:
    host = f.as_str(raw, path).strip().lower().rstrip(".")
    if host not in ("", "*") and not _HOST.match(host):
        raise ModelError(
            path, f"{raw!r} is not a host name (a DNS name, '*.' + a DNS name, or '*')"
        )
    return host or "*"


def _path_prefixes(spec: Mapping[str, Any], p: str) -> tuple[str, ...]:
    return tuple(f.each(spec, "pathPrefixes", p, parse_path_prefix))


def parse_path_prefix(raw: Any, path: str) -> str:
    value = f.as_str(raw, path)
    if not value.startswith("/"):
        raise ModelError(path, f"{value!r} must start with '/' (a URL path such as '/api')")
    if any(c in value for c in "?#") or any(c.isspace() for c in value):
        raise ModelError(path, f"{value!r} must be a URL path without query or fragment")
    return value


def _headers(spec: Mapping[str, Any], p: str) -> tuple[HeaderRule, ...]:
    return parse_header_rules(spec, p)


def parse_port_ref(obj: Mapping[str, Any], path: str, service_key: str = "service") -> PortRef:
    """A Service (named by ``service_key``) and exactly one of ``port`` and ``portName``."""
    service = f.req_str(obj, service_key, path)
    if not _DNS_LABEL.match(service):
        raise ModelError(f"{path}.{service_key}", f"{service!r} is not a valid Service name")
    port = f.opt_int(obj, "port", path, minimum=1, maximum=65535)
    port_name = f.opt_str(obj, "portName", path) or None
    if (port is None) == (port_name is None):
        raise ModelError(path, "must define either the 'portName' or the 'port'")
    return PortRef(service, port, port_name)


def _scale_target(spec: Mapping[str, Any], p: str) -> ScaleTargetRef:
    path = f"{p}.scaleTargetRef"
    ref = f.req_mapping(spec, "scaleTargetRef", p)
    if _is_local(ref) and not any(k in ref for k in ("service", "port", "portName")):
        # A local workload is its own service, listening on its one port.
        name = f.req_str(ref, "name", path)
        backend = PortRef(name)
        return ScaleTargetRef(name, LOCAL_WORKLOAD_KIND, LOCAL_API_VERSION, backend)
    backend = parse_port_ref(ref, path)
    name = f.opt_str(ref, "name", path) or ""
    if not name:
        # The add-on allows omitting the name; the workload is then named like the Service.
        name = backend.service
    if not _DNS_SUBDOMAIN.match(name):
        raise ModelError(f"{path}.name", f"{name!r} is not a valid object name")
    return ScaleTargetRef(
        name=name,
        kind=f.opt_str(ref, "kind", path) or "Deployment",
        api_version=f.opt_str(ref, "apiVersion", path) or "apps/v1",
        backend=backend,
    )


def _is_local(ref: Mapping[str, Any]) -> bool:
    return ref.get("kind") == LOCAL_WORKLOAD_KIND and ref.get("apiVersion") == LOCAL_API_VERSION


def _scaling_metric(spec: Mapping[str, Any], p: str) -> ScalingMetric:
    tpr = f.opt_int(spec, "targetPendingRequests", p, minimum=1)
    metric = f.opt_mapping(spec, "scalingMetric", p)
    if metric is None:
        return ScalingMetric("concurrency", float(tpr or DEFAULT_TARGET_VALUE))
    path = f"{p}.scalingMetric"
    conc = f.opt_mapping(metric, "concurrency", path)
    rate = f.opt_mapping(metric, "requestRate", path)
    if (conc is None) == (rate is None):
        raise ModelError(path, "must set exactly one of 'concurrency' and 'requestRate'")
    if conc is not None:
        target = f.opt_number(
            conc, "targetValue", f"{path}.concurrency", tpr or DEFAULT_TARGET_VALUE
        )
        _positive(target, f"{path}.concurrency.targetValue")
        return ScalingMetric("concurrency", target)
    assert rate is not None
    rpath = f"{path}.requestRate"
    target = f.opt_number(rate, "targetValue", rpath, DEFAULT_TARGET_VALUE)
    _positive(target, f"{rpath}.targetValue")
    window = f.opt_duration(rate, "window", rpath, DEFAULT_RATE_WINDOW)
    granularity = f.opt_duration(rate, "granularity", rpath, DEFAULT_RATE_GRANULARITY)
    if granularity <= 0:
        raise ModelError(f"{rpath}.granularity", "must be greater than zero")
    if window < granularity:
        raise ModelError(f"{rpath}.window", "must not be shorter than the granularity")
    return ScalingMetric("requestRate", target, window, granularity)


def _positive(value: float | None, path: str) -> None:
    if value is not None and value <= 0:
        raise ModelError(path, f"must be greater than zero, got {value:g}")


def _failover(spec: Mapping[str, Any], p: str) -> FailoverRef | None:
    raw = f.opt_mapping(spec, "coldStartTimeoutFailoverRef", p)
    if raw is None:
        return None
    path = f"{p}.coldStartTimeoutFailoverRef"
    timeout = f.opt_int(raw, "timeoutSeconds", path, int(DEFAULT_FAILOVER_TIMEOUT), minimum=1)
    return FailoverRef(parse_port_ref(raw, path), float(timeout))


def _timeouts(spec: Mapping[str, Any], p: str) -> Timeouts:
    raw = f.opt_mapping(spec, "timeouts", p) or {}
    path = f"{p}.timeouts"

    def timeout(key: str) -> float | None:
        return f.guard(raw, key, lambda: _nonzero(f.opt_duration(raw, key, path)), None)

    return Timeouts(
        condition_wait=timeout("conditionWait"),
        response_header=timeout("responseHeader"),
        connect=timeout("connect"),
        request=timeout("request"),
    )


def _nonzero(value: float | None) -> float | None:
    # A zero duration is how Go serialises "unset" for these fields: it means the default.
    return value if value else None


def _cold_start(spec: Mapping[str, Any], p: str) -> ColdStart:
    raw = f.opt_mapping(spec, "coldStart", p)
    if raw is None:
        return ColdStart()
    path = f"{p}.coldStart"
    return ColdStart(
        max_held_requests=f.guard(raw, "maxHeldRequests", lambda: _max_held(raw, path), None),
        placeholder=f.guard(raw, "placeholder", lambda: _placeholder(raw, path), Placeholder()),
        response_header=f.guard(
            raw, "responseHeader", lambda: f.opt_bool(raw, "responseHeader", path, True), True
        ),
    )


def _max_held(raw: Mapping[str, Any], path: str) -> int | None:
    held = f.opt_int(raw, "maxHeldRequests", path)
    if held is not None and held < 1:
        raise ModelError(
            f"{path}.maxHeldRequests",
            f"must be at least 1, got {held}: the first held request is what wakes the target",
        )
    return held


def _placeholder(raw: Mapping[str, Any], path: str) -> Placeholder:
    ph_raw = f.opt_mapping(raw, "placeholder", path)
    if ph_raw is None:
        return Placeholder()
    pp = f"{path}.placeholder"
    return Placeholder(
        enabled=f.opt_bool(ph_raw, "enabled", pp, True),
        status=f.opt_int(ph_raw, "status", pp, 503, minimum=200, maximum=599),
        body=f.opt_str(ph_raw, "body", pp, PLACEHOLDER_BODY),
        content_type=f.opt_str(ph_raw, "contentType", pp, PLACEHOLDER_CONTENT_TYPE),
        refresh_seconds=f.opt_int(
            ph_raw, "refreshSeconds", pp, DEFAULT_PLACEHOLDER_REFRESH, minimum=1, maximum=3600
        ),
    )


def _routes(spec: Mapping[str, Any], p: str, namespace: str) -> tuple[RouteBinding, ...]:
    def route(raw: Any, path: str) -> RouteBinding:
        item = f.mapping(raw, path)
        name = f.req_str(item, "name", path)
        ns = f.opt_str(item, "namespace", path) or namespace
        for key, value in (("name", name), ("namespace", ns)):
            if not _DNS_SUBDOMAIN.match(value):
                raise ModelError(f"{path}.{key}", f"{value!r} is not a valid object name")
        return RouteBinding(name, ns, f.opt_str(item, "ruleName", path) or None)

    return tuple(f.each(spec, "routes", p, route))
