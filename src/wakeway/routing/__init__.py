"""The routing table built from HTTPScaledObjects and HTTPRoutes (pure)."""

from wakeway.routing.routes import BoundRule, RouteHit
from wakeway.routing.scaledobjects import Conflict, HostEntry
from wakeway.routing.table import (
    BindingProblem,
    InterceptorRef,
    Resolution,
    RoutingTable,
    bind_routes,
)

__all__ = [
    "BindingProblem",
    "BoundRule",
    "Conflict",
    "HostEntry",
    "InterceptorRef",
    "Resolution",
    "RouteHit",
    "RoutingTable",
    "bind_routes",
]
