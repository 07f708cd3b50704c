"""The routing table built from HTTPScaledObjects and HTTPRoutes (pure)."""

from wakeway.routing.endpoints import (
    BackendProblem,
    EndpointIndex,
    backends_of,
    endpoint_view,
    h2c_backends,
    index_slices,
)
from wakeway.routing.grants import NO_GRANTS, RouteGrants
from wakeway.routing.identity import IDENTITY_HEADER, RouteIdentity
from wakeway.routing.routes import BoundRule, RouteHit
from wakeway.routing.scaledobjects import Conflict, HostEntry, merge_targets
from wakeway.routing.table import (
    BindingProblem,
    InterceptorRef,
    Resolution,
    RoutingTable,
    bind_routes,
)

__all__ = [
    "IDENTITY_HEADER",
    "NO_GRANTS",
    "BackendProblem",
    "BindingProblem",
    "BoundRule",
    "Conflict",
    "EndpointIndex",
    "HostEntry",
    "InterceptorRef",
    "Resolution",
    "RouteGrants",
    "RouteHit",
    "RouteIdentity",
    "RoutingTable",
    "backends_of",
    "bind_routes",
    "endpoint_view",
    "h2c_backends",
    "index_slices",
    "merge_targets",
]
