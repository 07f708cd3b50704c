"""Builders for routing tests: HTTPScaledObject and HTTPRoute documents parsed for real."""

from __future__ import annotations

from typing import Any

from wakeway.model.httproute import HTTPRoute, parse_httproute
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.routing import InterceptorRef

INTERCEPTOR = InterceptorRef("wakeway", "wakeway-interceptor", 8080)


def so(
    name: str,
    *,
    ns: str = "default",
    created: str = "2026-01-01T00:00:00Z",
    routes: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> HTTPScaledObject:
    body: dict[str, Any] = {
        "scaleTargetRef": {"name": name, "service": name, "port": 8080},
        **spec,
    }
    if routes is not None:
        body["routes"] = routes
    return parse_httpscaledobject(
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": body,
        }
    )


def to_interceptor() -> list[dict[str, Any]]:
    return [{"name": INTERCEPTOR.name, "namespace": INTERCEPTOR.namespace, "port": 8080}]


def route(
    name: str,
    rules: list[dict[str, Any]],
    *,
    ns: str = "default",
    hostnames: list[str] | None = None,
    created: str = "2026-01-01T00:00:00Z",
) -> HTTPRoute:
    spec: dict[str, Any] = {
        "parentRefs": [{"name": "gw"}],
        "rules": [{"backendRefs": to_interceptor(), **r} for r in rules],
    }
    if hostnames is not None:
        spec["hostnames"] = hostnames
    return parse_httproute(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
            "spec": spec,
        }
    )
