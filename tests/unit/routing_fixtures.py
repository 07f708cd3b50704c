"""Builders for routing tests: HTTPScaledObject and HTTPRoute documents parsed for real."""

from __future__ import annotations

from typing import Any

from wakeway.model.httproute import HTTPRoute, parse_httproute
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.model.service import ReferenceGrant, parse_reference_grant
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


def reference_grant(
    ns: str,
    *,
    from_ns: str,
    from_group: str = "http.keda.sh",
    from_kind: str = "HTTPScaledObject",
    to_group: str = "gateway.networking.k8s.io",
    to_kind: str = "HTTPRoute",
    to_name: str | None = None,
) -> ReferenceGrant:
    """A ReferenceGrant in ``ns``; by default the one a route owner writes to let
    HTTPScaledObjects of ``from_ns`` bind its HTTPRoutes."""
    to: dict[str, Any] = {"group": to_group, "kind": to_kind}
    if to_name is not None:
        to["name"] = to_name
    return parse_reference_grant(
        {
            "apiVersion": "gateway.networking.k8s.io/v1beta1",
            "kind": "ReferenceGrant",
            "metadata": {"name": f"from-{from_ns}", "namespace": ns},
            "spec": {
                "from": [{"group": from_group, "kind": from_kind, "namespace": from_ns}],
                "to": [to],
            },
        }
    )
