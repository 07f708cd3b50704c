"""The routing table: every route source resolved to a target, built whole and swapped whole.

A :class:`RoutingTable` is built from a full snapshot of HTTPScaledObjects and HTTPRoutes and
never changes afterwards; whoever owns it replaces the reference in one assignment. Lookups are
synchronous and never await.

Precedence between the two sources: an HTTPRoute rule bound to an HTTPScaledObject
(``spec.routes``) is an explicit statement about Gateway traffic, so bound rules are tried
first, with the Gateway API's own precedence; the HTTPScaledObjects' ``hosts``/``pathPrefixes``
come after, with the KEDA HTTP add-on's semantics.

With a :class:`~wakeway.routing.identity.RouteIdentity` (Kubernetes mode), a request carrying a
valid route identity is routed among that route's bound rules only, never by its Host header
alone; one carrying an invalid identity is refused; one without an identity is matched against
the HTTPScaledObjects' hosts only (traffic that did not come through a bound route). A route's
identity is published (:meth:`RoutingTable.identities_of`) only to objects that own one of its
rules: a binding the route's owner permitted (:mod:`wakeway.routing.grants`) and that won.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from wakeway.gateway.request import Request
from wakeway.model.httproute import BackendRef, HTTPRoute, RouteRule
from wakeway.model.httpso import HTTPScaledObject, RouteBinding
from wakeway.routing.grants import NO_GRANTS, ClaimOrder, RouteGrants, claim_order
from wakeway.routing.identity import IDENTITY_HEADER, RouteIdentity
from wakeway.routing.routes import BoundRule, RouteHit, RouteIndex
from wakeway.routing.scaledobjects import Conflict, HostEntry, ScaledObjectIndex

# Filters whose effect the interceptor cannot undo: after a rewrite or redirect the request it
# sees no longer matches the rule that sent it, so re-matching would misroute.
REMATCH_BREAKING_FILTERS = ("URLRewrite", "RequestRedirect")


@dataclass(frozen=True, slots=True)
class InterceptorRef:
    """The interceptor's proxy Service, as HTTPRoute backendRefs name it."""

    namespace: str | None  # None: a Service of that name in any namespace (local mode)
    name: str
    port: int | None = None  # None: any port of that Service

    def is_referenced_by(self, ref: BackendRef, route_namespace: str) -> bool:
        return (
            ref.group in ("", "core")
            and ref.kind == "Service"
            and ref.name == self.name
            and (self.namespace is None or (ref.namespace or route_namespace) == self.namespace)
            and (self.port is None or ref.port is None or ref.port == self.port)
        )


@dataclass(frozen=True, slots=True)
class BindingProblem:
    """Why (part of) an HTTPScaledObject's ``spec.routes`` binding carries no traffic.

    ``reason`` is a CamelCase word for a status condition; ``message`` says what to fix.
    """

    target: str  # "namespace/name" of the HTTPScaledObject
    route: str  # "namespace/name" of the HTTPRoute
    rule: str | None
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a request resolved to, and through which source."""

    target: HTTPScaledObject
    route_hit: RouteHit | None = None
    host_entry: HostEntry | None = None


class RoutingTable:
    __slots__ = (
        "_bound_rules",
        "_identity",
        "_owned",
        "_routes",
        "_scaled",
        "conflicts",
        "problems",
        "targets",
    )

    def __init__(
        self,
        targets: Iterable[HTTPScaledObject] = (),
        routes: Iterable[HTTPRoute] = (),
        interceptor: InterceptorRef | None = None,
        grants: RouteGrants = NO_GRANTS,
        identity: RouteIdentity | None = None,
    ) -> None:
        by_key = {t.key: t for t in targets}
        self.targets: Mapping[str, HTTPScaledObject] = MappingProxyType(by_key)
        self._identity = identity
        bound, problems, conflicts = bind_routes(by_key.values(), routes, interceptor, grants)
        owned: dict[str, set[str]] = {}
        rules: dict[str, set[int]] = {}
        for b in bound:
            owned.setdefault(b.target.key, set()).add(b.route.key)
            rules.setdefault(b.route.key, set()).add(b.rule_index)
        self._owned = owned
        self._bound_rules = {route: frozenset(indices) for route, indices in rules.items()}
        if identity is not None:
            problems.extend(_unstamped(bound, identity))
        self._routes = RouteIndex(bound)
        self._scaled = ScaledObjectIndex(by_key.values())
        self.problems: tuple[BindingProblem, ...] = tuple(problems)
        self.conflicts: tuple[Conflict, ...] = tuple(conflicts) + self._scaled.conflicts

    # Pickled whole (not rebuilt) when an interceptor ships its table to its worker processes.
    def __getstate__(self) -> dict[str, object]:
        state = {name: getattr(self, name) for name in self.__slots__}
        state["targets"] = dict(self.targets)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self.targets = MappingProxyType(state["targets"])

    def resolve(self, req: Request) -> Resolution | None:
        if self._identity is not None:
            claimed = req.headers.get(IDENTITY_HEADER)
            if claimed is not None:
                route_key = self._identity.verify(claimed)
                hit = None if route_key is None else self._routes.lookup(req, route_key)
                return None if hit is None else Resolution(hit.target, route_hit=hit)
        else:
            hit = self._routes.lookup(req)
            if hit is not None:
                return Resolution(hit.target, route_hit=hit)
        entry = self._scaled.lookup(req)
        if entry is not None:
            return Resolution(entry.target, host_entry=entry)
        return None

    def lookup(self, req: Request) -> HTTPScaledObject | None:
        """The target for ``req``, or None (the interceptor answers 404)."""
        if self._identity is None:
            hit = self._routes.lookup(req)
            if hit is not None:
                return hit.target
            entry = self._scaled.lookup(req)
            return None if entry is None else entry.target
        found = self.resolve(req)
        return None if found is None else found.target

    def identities_of(self, target_key: str) -> dict[str, str]:
        """The identity of each route of which ``target_key`` owns a rule, by route key: what
        the operator may publish in that object's status. Nothing for a binding refused, lost
        to another claimant or naming a route that does not exist, nor without identities."""
        if self._identity is None:
            return {}
        stamp = self._identity.stamp
        return {route: stamp(route) for route in sorted(self._owned.get(target_key, ()))}

    def bound_rules(self, route_key: str) -> frozenset[int]:
        """The indices of ``route_key``'s rules bound to some object (refused bindings and
        rules that do not exist are not)."""
        return self._bound_rules.get(route_key, frozenset())

    def problems_of(self, target_key: str) -> Sequence[BindingProblem]:
        return [p for p in self.problems if p.target == target_key]

    def conflicts_of(self, target_key: str) -> Sequence[Conflict]:
        return [c for c in self.conflicts if target_key in (c.winner, c.loser)]


def bind_routes(
    targets: Iterable[HTTPScaledObject],
    routes: Iterable[HTTPRoute],
    interceptor: InterceptorRef | None,
    grants: RouteGrants = NO_GRANTS,
) -> tuple[list[BoundRule], list[BindingProblem], list[Conflict]]:
    """Resolve every ``spec.routes`` binding to the HTTPRoute rules it takes traffic from.

    A rule is bound when it exists, the binding is permitted (:meth:`RouteGrants.permits`), one
    of its backendRefs names the interceptor Service (any backendRef when ``interceptor`` is
    None) and it has no filter that defeats re-matching. A rule claimed by several objects goes
    to the first in :func:`~wakeway.routing.grants.claim_order`; the others get a conflict.
    """
    routes_by_key = {r.key: r for r in routes}
    claims: dict[tuple[str, int], list[tuple[ClaimOrder, HTTPScaledObject]]] = {}
    problems: list[BindingProblem] = []
    for target in sorted(targets, key=lambda t: (t.meta.creation_timestamp, t.key)):
        for binding in target.routes:
            route = routes_by_key.get(binding.route_key)
            problem = _route_problem(target, binding, route, grants)
            if problem is not None:
                problems.append(problem)
                continue
            assert route is not None
            for index, rule in _selected_rules(binding, route):
                issue = _rule_problem(target, route, index, rule, interceptor)
                if issue is not None:
                    problems.append(issue)
                    continue
                claims.setdefault((route.key, index), []).append(
                    (claim_order(route, target), target)
                )
    bound: list[BoundRule] = []
    conflicts: list[Conflict] = []
    for (route_key, index), claimants in claims.items():
        route = routes_by_key[route_key]
        claimants.sort(key=lambda c: c[0])
        owner = claimants[0][1]
        bound.append(BoundRule(route, index, owner))
        for loser in dict.fromkeys(t.key for _order, t in claimants[1:] if t.key != owner.key):
            conflicts.append(
                Conflict(
                    source="HTTPRoute",
                    claim=f"HTTPRoute {route_key} rule {_rule_label(route.rules[index], index)}",
                    winner=owner.key,
                    loser=loser,
                    route=route_key,
                    rule=index,
                )
            )
    return bound, problems, conflicts


def _route_problem(
    target: HTTPScaledObject,
    binding: RouteBinding,
    route: HTTPRoute | None,
    grants: RouteGrants,
) -> BindingProblem | None:
    def problem(reason: str, message: str) -> BindingProblem:
        return BindingProblem(target.key, binding.route_key, binding.rule_name, reason, message)

    if route is None:
        return problem("RouteNotFound", f"HTTPRoute {binding.route_key} does not exist")
    if not grants.permits(route, target):
        return problem(
            "RefNotPermitted",
            f"HTTPRoute {route.key} is in another namespace and no ReferenceGrant in "
            f"{route.namespace} allows HTTPScaledObjects from {target.namespace} to bind it",
        )
    if binding.rule_name is not None and not any(r.name == binding.rule_name for r in route.rules):
        return problem(
            "RuleNotFound", f"HTTPRoute {route.key} has no rule named {binding.rule_name!r}"
        )
    if binding.rule_name is None and not route.rules:
        return problem("NoRules", f"HTTPRoute {route.key} has no rules")
    return None


def _selected_rules(binding: RouteBinding, route: HTTPRoute) -> list[tuple[int, RouteRule]]:
    return [
        (i, rule)
        for i, rule in enumerate(route.rules)
        if binding.rule_name is None or rule.name == binding.rule_name
    ]


def _rule_problem(
    target: HTTPScaledObject,
    route: HTTPRoute,
    index: int,
    rule: RouteRule,
    interceptor: InterceptorRef | None,
) -> BindingProblem | None:
    if interceptor is not None and not any(
        interceptor.is_referenced_by(ref, route.namespace) for ref in rule.backend_refs
    ):
        return BindingProblem(
            target.key,
            route.key,
            rule.name,
            "NotRoutedToInterceptor",
            f"HTTPRoute {route.key} rule {_rule_label(rule, index)} has no backendRef to the "
            "interceptor Service "
            f"{interceptor.namespace or route.namespace}/{interceptor.name}",
        )
    breaking = [f.type for f in rule.filters if f.type in REMATCH_BREAKING_FILTERS]
    if breaking:
        return BindingProblem(
            target.key,
            route.key,
            rule.name,
            "FilterBreaksRematch",
            f"HTTPRoute {route.key} rule {_rule_label(rule, index)} uses {', '.join(breaking)}: "
            "the interceptor "
            "would see a rewritten or redirected request that no longer matches the rule",
        )
    return None


def _unstamped(bound: Iterable[BoundRule], identity: RouteIdentity) -> list[BindingProblem]:
    """Bound rules that do not stamp their route's identity get no Gateway traffic: say so."""
    out: list[BindingProblem] = []
    for b in bound:
        rule = b.route.rules[b.rule_index]
        want = identity.stamp(b.route.key)
        stamped = any(
            f.request_header_modifier is not None
            and any(
                name.lower() == IDENTITY_HEADER and value == want
                for name, value in f.request_header_modifier.set
            )
            for f in rule.filters
        )
        if not stamped:
            out.append(
                BindingProblem(
                    b.target.key,
                    b.route.key,
                    rule.name,
                    "IdentityNotStamped",
                    f"HTTPRoute {b.route.key} rule {_rule_label(rule, b.rule_index)} must set "
                    f"the header {IDENTITY_HEADER}: {want} with a RequestHeaderModifier filter",
                )
            )
    return out


def _rule_label(rule: RouteRule, index: int) -> str:
    return repr(rule.name) if rule.name else f"#{index}"
