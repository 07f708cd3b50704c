"""The Gateway API precedence across all rules of all HTTPRoutes, and the reference selector.

Sort keys, smaller first, compared in this order:

1. hostname (:func:`~wakeway.gateway.hostnames.hostname_rank`): a matching non-wildcard
   hostname over a wildcard, more characters first; a route without hostnames last;
2. the match (:func:`match_rank`): Exact path, then RegularExpression path, then PathPrefix
   with more characters first; then a method; then more header matches; then more
   query-param matches;
3. the route (:func:`route_rank`): older creation timestamp, then "namespace/name";
4. rule order, then match order within the rule.

**RegularExpression paths** have implementation-specific precedence in the spec. Here they come
after Exact and before every PathPrefix, longer patterns first. A regex is written to pick out
particular paths, so it is narrower than a prefix in practice; ranking it among prefixes would
put it behind the ubiquitous ``PathPrefix /`` catch-all (which matches every request) and make
it unreachable whenever such a rule exists. Ranking it after Exact keeps the spec's rule that
an exact path always wins. This is the order Envoy Gateway uses as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from wakeway.gateway.hostnames import HostnameRank, hostname_rank
from wakeway.gateway.match import compile_match, effective_headers, effective_query_params
from wakeway.gateway.request import Request
from wakeway.model.httproute import HTTPRoute, RouteMatch, RouteRule

T = TypeVar("T")

_PATH_KIND_ORDER = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}

MatchRank = tuple[int, int, bool, int, int]
RouteRank = tuple[float, str]


def match_rank(m: RouteMatch) -> MatchRank:
    """Sort key of one match by the spec's per-match criteria; smaller is preferred."""
    return (
        _PATH_KIND_ORDER[m.path.type],
        -len(m.path.value),
        m.method is None,
        -len(effective_headers(m)),
        -len(effective_query_params(m)),
    )


def route_rank(route: HTTPRoute) -> RouteRank:
    """Tie-break between routes: the oldest, then "namespace/name" alphabetically."""
    return (route.creation_timestamp, route.key)


@dataclass(frozen=True, slots=True)
class Selection:
    """The winning (route, rule, match) for a request."""

    route: HTTPRoute
    rule_index: int
    match_index: int

    @property
    def rule(self) -> RouteRule:
        return self.route.rules[self.rule_index]

    @property
    def match(self) -> RouteMatch:
        return self.rule.matches[self.match_index]


FullRank = tuple[HostnameRank, MatchRank, RouteRank, int, int]


def precedence_key(
    host_rank: HostnameRank, route: HTTPRoute, rule_index: int, match_index: int
) -> FullRank:
    """The complete sort key of one (route hostname, rule, match) candidate."""
    m = route.rules[rule_index].matches[match_index]
    return (host_rank, match_rank(m), route_rank(route), rule_index, match_index)


def select_among(
    candidates: Iterable[tuple[HTTPRoute, T]], req: Request
) -> tuple[Selection, T] | None:
    """Like :func:`select`, for routes that carry a payload (e.g. what they resolve to).

    Brute force on purpose: every (route, matching hostname, rule, match) is ranked, the list is
    sorted by the full precedence, and the first that matches the request wins. This is the
    reference the indexed routing table is tested against.
    """
    ranked: list[tuple[FullRank, int, Selection]] = []
    payloads: list[T] = []
    for position, (route, payload) in enumerate(candidates):
        payloads.append(payload)
        hostnames: Sequence[str | None] = route.hostnames or (None,)
        for hostname in hostnames:
            host_rank = hostname_rank(hostname, req.host)
            if host_rank is None:
                continue
            for rule_index, rule in enumerate(route.rules):
                for match_index in range(len(rule.matches)):
                    key = precedence_key(host_rank, route, rule_index, match_index)
                    ranked.append((key, position, Selection(route, rule_index, match_index)))
    # The position only breaks ties between identical routes given twice; it keeps the sort
    # from comparing Selections.
    ranked.sort(key=lambda item: (item[0], item[1]))
    for _key, position, selection in ranked:
        if compile_match(selection.match).matches(req):
            return selection, payloads[position]
    return None


def select(routes: Sequence[HTTPRoute], req: Request) -> Selection | None:
    """The route rule and match the Gateway API gives ``req`` to, or None (a 404)."""
    found = select_among(((route, None) for route in routes), req)
    return None if found is None else found[0]
