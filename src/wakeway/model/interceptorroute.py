"""InterceptorRoute (``http.keda.sh/v1beta1``), the KEDA HTTP add-on's kind since v0.14.

Read into the same target model as an HTTPScaledObject (:class:`~wakeway.model.httpso.
HTTPScaledObject`, ``source="InterceptorRoute"``), so routing, holding, counting and the scaler
treat both alike. What differs is kept as data:

- ``spec.rules``: each rule is one :class:`~wakeway.model.httpso.MatchRule` (any of its hosts,
  any of its path prefixes, every header); no rules, no traffic, as in the add-on. A path
  without its leading ``/`` means the same path with it (the add-on trims slashes).
- ``spec.scalingMetric``: concurrency, request rate, or both (KEDA then scales on whichever
  asks for more replicas).
- no workload: the user's own KEDA ScaledObject, whose ``external-push`` trigger names the
  route (metadata key ``interceptorRoute``), scales it; wakeway never creates one for it.
- ``spec.coldStart.fallback.service``: the failover backend, used at the readiness deadline
  (``timeouts.readiness``; 30 s when unset or ``0s``).
- ``spec.coldStart.placeholder.response``: answered at once while the target has no ready
  endpoint, as the request wakes it; with a placeholder the fallback is never reached (as in
  the add-on, where the placeholder answers whenever no endpoint is ready).
- ``spec.timeouts``: ``readiness`` is the hold deadline, ``request`` and ``responseHeader``
  as named; ``0s`` (the add-on's "no deadline") means the interceptor's default here, since
  every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wakeway.model import fields as f
from wakeway.model.errors import ModelError
from wakeway.model.exclusions import parse_header_rules
from wakeway.model.httpso import (
    DEFAULT_FAILOVER_TIMEOUT,
    DEFAULT_RATE_GRANULARITY,
    DEFAULT_RATE_WINDOW,
    PLACEHOLDER_CONTENT_TYPE,
    ColdStart,
    FailoverRef,
    HTTPScaledObject,
    MatchRule,
    Placeholder,
    PortRef,
    ScaleTargetRef,
    ScalingMetric,
    Timeouts,
    parse_host,
    parse_path_prefix,
    parse_port_ref,
)
from wakeway.model.meta import ObjectMeta, parse_meta

API_VERSION = "http.keda.sh/v1beta1"
KIND = "InterceptorRoute"
DEFAULT_PLACEHOLDER_STATUS = 503
MAX_PLACEHOLDER_BODY = 32768


def parse_interceptorroute(
    doc: Mapping[str, Any], default_namespace: str = "default"
) -> HTTPScaledObject:
    """Parse and validate one InterceptorRoute document, strictly: one :class:`ModelError`
    lists every problem, each naming its field path, an unknown field among them."""
    return f.parse_document(doc, lambda d: _parse(d, default_namespace), known=("status",))


def _parse(doc: Mapping[str, Any], default_namespace: str) -> HTTPScaledObject:
    if doc.get("apiVersion") != API_VERSION:
        raise ModelError("apiVersion", f"must be {API_VERSION!r}, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != KIND:
        raise ModelError("kind", f"must be {KIND!r}, got {doc.get('kind')!r}")
    no_meta = ObjectMeta(default_namespace, "")
    meta = f.guard(doc, "metadata", lambda: parse_meta(doc, default_namespace), no_meta)
    spec = f.req_mapping(doc, "spec", "")
    p = "spec"
    backend = f.guard(spec, "target", lambda: _target(spec, p), PortRef(""))
    no_metrics: tuple[ScalingMetric, ...] = ()
    metrics = f.guard(spec, "scalingMetric", lambda: _metrics(spec, p), no_metrics)
    no_timeouts: tuple[Timeouts, float | None] = (Timeouts(), None)
    timeouts, readiness = f.guard(spec, "timeouts", lambda: _timeouts(spec, p), no_timeouts)
    no_cold_start: tuple[FailoverRef | None, Placeholder] = (None, Placeholder())
    failover, placeholder = f.guard(
        spec, "coldStart", lambda: _cold_start(spec, p, readiness), no_cold_start
    )
    return HTTPScaledObject(
        meta=meta,
        hosts=(),
        path_prefixes=(),
        headers=(),
        scale_target=ScaleTargetRef("", "", "", backend),
        scaling_metric=metrics[0] if metrics else ScalingMetric("concurrency", 100),
        failover=failover,
        timeouts=timeouts,
        cold_start=ColdStart(placeholder=placeholder),
        source=KIND,
        rules=tuple(f.guard(spec, "rules", lambda: f.each(spec, "rules", p, _rule), [])),
        scaling_metrics=metrics,
    )


def _target(spec: Mapping[str, Any], p: str) -> PortRef:
    return parse_port_ref(f.req_mapping(spec, "target", p), f"{p}.target")


def _rule(raw: Any, path: str) -> MatchRule:
    rule = f.mapping(raw, path)
    hosts = tuple(dict.fromkeys(f.each(rule, "hosts", path, parse_host)))
    paths = tuple(f.each(rule, "paths", path, _path))
    return MatchRule(hosts, paths, parse_header_rules(rule, path))


def _path(raw: Any, path: str) -> str:
    value = f.req_str(f.mapping(raw, path), "value", path)
    # The add-on trims slashes from both ends of a path before matching: "api" is "/api".
    return parse_path_prefix(value if value.startswith("/") else "/" + value, f"{path}.value")


def _metrics(spec: Mapping[str, Any], p: str) -> tuple[ScalingMetric, ...]:
    path = f"{p}.scalingMetric"
    raw = f.req_mapping(spec, "scalingMetric", p)
    out: list[ScalingMetric] = []
    conc = f.opt_mapping(raw, "concurrency", path)
    if conc is not None:
        target = f.opt_int(conc, "targetValue", f"{path}.concurrency", minimum=1)
        if target is None:
            raise ModelError(f"{path}.concurrency.targetValue", "is required")
        out.append(ScalingMetric("concurrency", float(target)))
    rate = f.opt_mapping(raw, "requestRate", path)
    if rate is not None:
        rpath = f"{path}.requestRate"
        target = f.opt_int(rate, "targetValue", rpath, minimum=1)
        if target is None:
            raise ModelError(f"{rpath}.targetValue", "is required")
        window = f.opt_duration(rate, "window", rpath, DEFAULT_RATE_WINDOW)
        granularity = f.opt_duration(rate, "granularity", rpath, DEFAULT_RATE_GRANULARITY)
        if granularity <= 0:
            raise ModelError(f"{rpath}.granularity", "must be greater than zero")
        if window < granularity:
            raise ModelError(f"{rpath}.window", "must not be shorter than the granularity")
        out.append(ScalingMetric("requestRate", float(target), window, granularity))
    if not out:
        raise ModelError(path, "at least one of 'concurrency' or 'requestRate' must be set")
    return tuple(out)


def _timeouts(spec: Mapping[str, Any], p: str) -> tuple[Timeouts, float | None]:
    """The timeouts, and ``readiness`` as written (``0.0`` for ``0s``; None when unset)."""
    raw = f.opt_mapping(spec, "timeouts", p) or {}
    path = f"{p}.timeouts"

    def timeout(key: str) -> float | None:
        return f.guard(raw, key, lambda: f.opt_duration(raw, key, path), None)

    readiness = timeout("readiness")
    return (
        Timeouts(
            condition_wait=readiness or None,
            response_header=timeout("responseHeader") or None,
            request=timeout("request") or None,
        ),
        readiness,
    )


def _cold_start(
    spec: Mapping[str, Any], p: str, readiness: float | None
) -> tuple[FailoverRef | None, Placeholder]:
    raw = f.opt_mapping(spec, "coldStart", p)
    if raw is None:
        return None, Placeholder()
    path = f"{p}.coldStart"
    fallback = f.opt_mapping(raw, "fallback", path)
    placeholder = f.opt_mapping(raw, "placeholder", path)
    if fallback is None and placeholder is None:
        raise ModelError(path, "at least one of 'fallback' or 'placeholder' must be set")
    failover = None
    if fallback is not None:
        fpath = f"{path}.fallback"
        service = f.req_mapping(fallback, "service", fpath)
        backend = parse_port_ref(service, f"{fpath}.service", service_key="name")
        failover = FailoverRef(backend, readiness or DEFAULT_FAILOVER_TIMEOUT)
    if placeholder is None:
        return failover, Placeholder()
    # The placeholder answers whenever no endpoint is ready: the fallback is never reached.
    return None, _placeholder(placeholder, f"{path}.placeholder")


def _placeholder(raw: Mapping[str, Any], path: str) -> Placeholder:
    rpath = f"{path}.response"
    response = f.req_mapping(raw, "response", path)
    if response.get("bodyFromConfigMap") is not None:
        raise ModelError(
            f"{rpath}.bodyFromConfigMap",
            "not supported by wakeway (it reads no ConfigMaps); give the text in 'body'",
        )
    body = f.opt_str(response, "body", rpath, "")
    if len(body) > MAX_PLACEHOLDER_BODY:
        raise ModelError(f"{rpath}.body", f"must be at most {MAX_PLACEHOLDER_BODY} characters")
    headers_raw = f.opt_mapping(response, "headers", rpath) or {}
    headers = tuple(
        (str(name), f.as_str(headers_raw[name], f"{rpath}.headers.{name}")) for name in headers_raw
    )
    content_type = next(
        (value for name, value in headers if name.lower() == "content-type"),
        PLACEHOLDER_CONTENT_TYPE,
    )
    return Placeholder(
        enabled=True,
        status=f.opt_int(
            response, "statusCode", rpath, DEFAULT_PLACEHOLDER_STATUS, minimum=100, maximum=599
        ),
        body=body,
        content_type=content_type,
        immediate=True,
        headers=tuple((n, v) for n, v in headers if n.lower() != "content-type"),
    )
