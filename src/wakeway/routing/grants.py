"""Who may bind an HTTPRoute to an HTTPScaledObject: the one rule, used by the interceptor and
the operator alike.

An HTTPScaledObject's ``spec.routes`` entry is a reference from the HTTPScaledObject (the
referrer) to an HTTPRoute (the referent). By the Gateway API's ReferenceGrant convention, consent
for a reference across namespaces comes from the referent's owner: a ReferenceGrant in the
HTTPRoute's namespace, ``from`` HTTPScaledObjects (group ``http.keda.sh``) of the referrer's
namespace, ``to`` HTTPRoutes (group ``gateway.networking.k8s.io``), optionally naming the route.
A grant in the referrer's own namespace proves nothing: anyone can write one there.

When several HTTPScaledObjects claim the same rule, one in the route's own namespace always
comes before any in another namespace, whatever their ages; within each group the older object
wins (then "namespace/name"), so a contested rule keeps its owner across rebuilds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from wakeway.model.httproute import HTTPRoute
from wakeway.model.httpso import API_VERSION, KIND, HTTPScaledObject
from wakeway.model.service import ReferenceGrant

HTTPSO_GROUP = API_VERSION.partition("/")[0]
HTTPSO_KIND = KIND
ROUTE_GROUP = "gateway.networking.k8s.io"
ROUTE_KIND = "HTTPRoute"

ClaimOrder = tuple[bool, float, str]


@dataclass(frozen=True, slots=True)
class RouteGrants:
    """The ReferenceGrants that matter for route bindings, indexed by namespace."""

    by_namespace: Mapping[str, tuple[ReferenceGrant, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def of(cls, grants: Iterable[ReferenceGrant]) -> RouteGrants:
        index: dict[str, list[ReferenceGrant]] = {}
        for grant in grants:
            index.setdefault(grant.meta.namespace, []).append(grant)
        return cls(MappingProxyType({ns: tuple(gs) for ns, gs in index.items()}))

    def permits(self, route: HTTPRoute, target: HTTPScaledObject) -> bool:
        """Whether ``target`` may take traffic from ``route``: same namespace, or a grant in the
        route's namespace from HTTPScaledObjects of the target's namespace to that route."""
        if route.namespace == target.namespace:
            return True
        return any(
            grant.allows(
                HTTPSO_GROUP, HTTPSO_KIND, target.namespace, ROUTE_GROUP, ROUTE_KIND, route.name
            )
            for grant in self.by_namespace.get(route.namespace, ())
        )


NO_GRANTS = RouteGrants()


def claim_order(route: HTTPRoute, target: HTTPScaledObject) -> ClaimOrder:
    """Sort key of claimants of one rule: the route's own namespace first, then the oldest."""
    return (target.namespace != route.namespace, target.meta.creation_timestamp, target.key)
