"""Routes declared by HTTPRoute rules bound to HTTPScaledObjects, in Gateway API precedence.

The index holds, per host bucket (see :mod:`wakeway.routing.hosts`), the bound matches split
by path type: Exact paths in a dict, RegularExpression paths in a list, PathPrefix matches in a
dict keyed by normalised prefix. Each list is sorted by the rest of the spec's precedence
(:func:`wakeway.gateway.match_rank`, then the route, rule and match order), so a lookup walks
Exact, then RegularExpression, then prefixes longest first, and returns the first candidate
whose remaining conditions hold. That is exactly :func:`wakeway.gateway.select_among`'s
order, which the property tests check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from wakeway.gateway import CompiledMatch, compile_match, match_rank, route_rank
from wakeway.gateway.precedence import MatchRank
from wakeway.gateway.request import Request
from wakeway.model.httproute import HTTPRoute, RouteMatch
from wakeway.model.httpso import HTTPScaledObject
from wakeway.routing.hosts import HostIndex
from wakeway.routing.paths import normalize_prefix, prefixes_of


@dataclass(frozen=True, slots=True)
class BoundRule:
    """An HTTPRoute rule whose traffic goes to ``target``."""

    route: HTTPRoute
    rule_index: int
    target: HTTPScaledObject


@dataclass(frozen=True, slots=True)
class RouteHit:
    """Which rule and match of which route accepted the request, and its target."""

    route: HTTPRoute
    rule_index: int
    match_index: int
    target: HTTPScaledObject


@dataclass(slots=True)
class _Candidate:
    compiled: CompiledMatch
    hit: RouteHit
    sort_key: tuple[object, ...]


@dataclass(slots=True)
class _Bucket:
    exact: dict[str, list[_Candidate]] = field(default_factory=dict)
    regex: list[_Candidate] = field(default_factory=list)
    prefix: dict[str, list[_Candidate]] = field(default_factory=dict)

    def add(self, cand: _Candidate) -> None:
        path = cand.hit.route.rules[cand.hit.rule_index].matches[cand.hit.match_index].path
        if path.type == "Exact":
            self.exact.setdefault(path.value, []).append(cand)
        elif path.type == "RegularExpression":
            self.regex.append(cand)
        else:
            self.prefix.setdefault(normalize_prefix(path.value), []).append(cand)

    def sort(self) -> None:
        for group in (*self.exact.values(), self.regex, *self.prefix.values()):
            group.sort(key=lambda c: c.sort_key)

    def lookup(self, req: Request, only: str | None) -> RouteHit | None:
        group = self.exact.get(req.path)
        if group is not None:
            for cand in group:
                if _accepts(cand, req, only):
                    return cand.hit
        for cand in self.regex:
            if _accepts(cand, req, only):
                return cand.hit
        if self.prefix:
            by_prefix = self.prefix
            for key in prefixes_of(req.path):
                group = by_prefix.get(key)
                if group is not None:
                    for cand in group:
                        if _accepts(cand, req, only):
                            return cand.hit
        return None


def _accepts(cand: _Candidate, req: Request, only: str | None) -> bool:
    if only is not None and cand.hit.route.key != only:
        return False
    return cand.compiled.matches(req)


class RouteIndex:
    """Immutable once built; lookup walks host buckets most specific first."""

    __slots__ = ("_hosts",)

    def __init__(self, bound: Iterable[BoundRule]) -> None:
        hosts: HostIndex[_Bucket] = HostIndex()
        # Many rules share a match (PathPrefix "/", the same API prefix): compile each once.
        compiled: dict[RouteMatch, tuple[CompiledMatch, MatchRank]] = {}
        for rule in bound:
            route = rule.route
            rank = route_rank(route)
            for match_index, m in enumerate(route.rules[rule.rule_index].matches):
                known = compiled.get(m)
                if known is None:
                    known = compiled[m] = (compile_match(m), match_rank(m))
                cand = _Candidate(
                    compiled=known[0],
                    hit=RouteHit(route, rule.rule_index, match_index, rule.target),
                    sort_key=(known[1], rank, rule.rule_index, match_index),
                )
                for hostname in route.hostnames or (None,):
                    hosts.slot(hostname, _Bucket).add(cand)
        for bucket in (*hosts.exact.values(), *hosts.wildcard.values()):
            bucket.sort()
        if hosts.catch_all is not None:
            hosts.catch_all.sort()
        self._hosts = hosts

    def lookup(self, req: Request, only: str | None = None) -> RouteHit | None:
        """The winning bound rule for ``req``; with ``only``, among that route's rules alone."""
        for bucket in self._hosts.buckets_for(req.host):
            hit = bucket.lookup(req, only)
            if hit is not None:
                return hit
        return None
