"""Why a request goes where it goes: the winner of the routing table and, for every other
candidate, the reason it did not get the request (pure; ``wakeway explain`` prints it).

The winner is whatever :meth:`RoutingTable.resolve` returns for the request, so the explanation
can never disagree with the interceptor. Candidates are every match of every HTTPRoute rule named
by an HTTPScaledObject's ``spec.routes`` (bound, refused or lost to another claimant) and every
host/path claim of the HTTPScaledObjects, in the order the table tries them: bound rules first,
in Gateway API precedence, then the objects' claims. The request is explained as the interceptor
routes it without a route identity (local mode; a cluster request whose identity is valid is
routed among that route's rules, by the same precedence).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wakeway.gateway import compile_match, path_prefix_matches, route_hostname_rank
from wakeway.gateway.request import Request
from wakeway.model.httproute import HTTPRoute, RouteMatch, RouteRule
from wakeway.model.httpso import HTTPScaledObject
from wakeway.routing.grants import NO_GRANTS, RouteGrants
from wakeway.routing.scaledobjects import HostEntry, headers_match, host_entries
from wakeway.routing.table import InterceptorRef, Resolution, RoutingTable, bind_routes

# Verdicts, one word each, for output and tests.
SELECTED = "selected"
NOT_BOUND = "not-bound"  # the binding carries no traffic (route missing, not permitted, ...)
CONFLICT = "conflict"  # another object owns the same rule or claim
HOST = "host"
PATH = "path"
METHOD = "method"
HEADER = "header"
QUERY = "query"
OUTRANKED = "outranked"  # it matches, but the winner comes first


@dataclass(frozen=True, slots=True)
class Candidate:
    """One place a request could have gone, and what became of it."""

    target: str  # "namespace/name" of the HTTPScaledObject
    source: str  # "HTTPRoute" or "HTTPScaledObject"
    claim: str  # readable: "HTTPRoute ns/r rule 'api' match #0" or "host * path /"
    verdict: str
    reason: str
    route: str | None = None
    rule: str | None = None  # the rule's name, or "#index"
    match: int | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    method: str
    host: str
    path: str
    winner: Candidate | None
    candidates: tuple[Candidate, ...]  # every other candidate, with why not


def explain(
    targets: Iterable[HTTPScaledObject],
    routes: Iterable[HTTPRoute],
    req: Request,
    interceptor: InterceptorRef | None = None,
    grants: RouteGrants = NO_GRANTS,
) -> Explanation:
    targets, routes = list(targets), list(routes)
    table = RoutingTable(targets, routes, interceptor, grants)
    found = table.resolve(req)
    bound, problems, conflicts = bind_routes(targets, routes, interceptor, grants)
    cands: list[Candidate] = []
    for b in sorted(bound, key=lambda b: (b.route.key, b.rule_index)):
        rule = b.route.rules[b.rule_index]
        for mi, m in enumerate(rule.matches):
            cands.append(_route_candidate(b.target.key, b.route, b.rule_index, mi, m, req, found))
    for p in problems:
        cands.append(
            Candidate(
                p.target,
                "HTTPRoute",
                f"HTTPRoute {p.route}" + (f" rule {p.rule!r}" if p.rule else ""),
                NOT_BOUND,
                f"{p.reason}: {p.message}",
                route=p.route,
                rule=p.rule,
            )
        )
    for c in conflicts:
        cands.append(Candidate(c.loser, c.source, c.claim, CONFLICT, c.message, route=c.route))
    for target in targets:
        for entry in host_entries(target):
            cands.append(_host_candidate(entry, req, found))
    winner = next((c for c in cands if c.verdict == SELECTED), None)
    others = tuple(c for c in cands if c.verdict != SELECTED)
    return Explanation(req.method, req.host, req.path, winner, others)


def rule_label(rule: RouteRule, index: int) -> str:
    return rule.name if rule.name else f"#{index}"


def _route_candidate(
    target: str,
    route: HTTPRoute,
    rule_index: int,
    match_index: int,
    m: RouteMatch,
    req: Request,
    found: Resolution | None,
) -> Candidate:
    label = rule_label(route.rules[rule_index], rule_index)
    claim = f"HTTPRoute {route.key} rule {label} match #{match_index}: {describe_match(m)}"

    def candidate(verdict: str, reason: str) -> Candidate:
        return Candidate(target, "HTTPRoute", claim, verdict, reason, route.key, label, match_index)

    hit = None if found is None else found.route_hit
    if (
        hit is not None
        and hit.route.key == route.key
        and (hit.rule_index, hit.match_index) == (rule_index, match_index)
    ):
        return candidate(SELECTED, "the most specific bound rule that matches the request")
    if route_hostname_rank(route.hostnames, req.host) is None:
        return candidate(HOST, f"host {req.host} is not among hostnames {list(route.hostnames)}")
    why = match_failure(m, req)
    if why is not None:
        return candidate(*why)
    return candidate(OUTRANKED, _outranked(found))


def match_failure(m: RouteMatch, req: Request) -> tuple[str, str] | None:
    """The first condition of ``m`` that ``req`` fails, as (verdict, reason); None if it
    matches."""
    if m.method is not None and req.method != m.method:
        return METHOD, f"method {req.method} is not {m.method}"
    if not compile_match(RouteMatch(path=m.path)).matches(req):
        return PATH, f"path {req.path} does not match {m.path.type} {m.path.value}"
    for h in m.headers:
        if not compile_match(RouteMatch(path=m.path, headers=(h,))).matches(req):
            got = req.headers.get(h.name.lower())
            have = "is absent" if got is None else f"is {got!r}"
            return HEADER, f"header {h.name} {have}, wants {h.type} {h.value!r}"
    for q in m.query_params:
        if not compile_match(RouteMatch(path=m.path, query_params=(q,))).matches(req):
            return QUERY, f"query parameter {q.name} does not match {q.type} {q.value!r}"
    return None


def describe_match(m: RouteMatch) -> str:
    parts = [f"{m.path.type} {m.path.value}"]
    if m.method is not None:
        parts.append(f"method {m.method}")
    parts += [f"header {h.name}={h.value}" for h in m.headers]
    parts += [f"query {q.name}={q.value}" for q in m.query_params]
    return ", ".join(parts)


def _host_candidate(entry: HostEntry, req: Request, found: Resolution | None) -> Candidate:
    claim = f"host {entry.host} path {entry.prefix or '/'}" + "".join(
        f" header {h.name}" + (f"={h.value}" if h.value is not None else "") for h in entry.headers
    )

    def candidate(verdict: str, reason: str) -> Candidate:
        return Candidate(entry.target.key, "HTTPScaledObject", claim, verdict, reason)

    if found is not None and found.host_entry == entry:
        return candidate(SELECTED, "the most specific host and path prefix that match")
    if not _host_matches(entry.host, req.host):
        return candidate(HOST, f"host {req.host} does not match {entry.host}")
    if not path_prefix_matches(entry.prefix, req.path):
        return candidate(PATH, f"path {req.path} is not under {entry.prefix or '/'}")
    if not headers_match(entry.headers, req.headers):
        return candidate(HEADER, "the request lacks a header this claim requires")
    return candidate(OUTRANKED, _outranked(found))


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    return route_hostname_rank((pattern,), host) is not None


def _outranked(found: Resolution | None) -> str:
    if found is None:  # cannot happen: a matching candidate means a winner
        return "it matches"
    if found.route_hit is not None:
        hit = found.route_hit
        label = rule_label(hit.route.rules[hit.rule_index], hit.rule_index)
        return (
            f"matches, but HTTPRoute {hit.route.key} rule {label} match #{hit.match_index} "
            "comes first (bound HTTPRoute rules precede host claims; among rules, Gateway API "
            "precedence)"
        )
    entry = found.host_entry
    assert entry is not None
    return (
        f"matches, but {entry.target.key}'s claim host {entry.host} path "
        f"{entry.prefix or '/'} is more specific or older"
    )


def candidate_json(c: Candidate) -> dict[str, Any]:
    return {
        "object": c.target,
        "source": c.source,
        "route": c.route,
        "rule": c.rule,
        "match": c.match,
        "claim": c.claim,
        "verdict": c.verdict,
        "reason": c.reason,
    }


def explanation_json(e: Explanation) -> dict[str, Any]:
    return {
        "request": {"method": e.method, "host": e.host, "path": e.path},
        "winner": None if e.winner is None else candidate_json(e.winner),
        "candidates": [candidate_json(c) for c in e.candidates],
    }


def explanation_from_json(doc: Mapping[str, Any]) -> Explanation:
    """The inverse of :func:`explanation_json`; KeyError or TypeError on a malformed one."""

    def cand(c: Mapping[str, Any]) -> Candidate:
        return Candidate(
            target=c["object"],
            source=c["source"],
            claim=c["claim"],
            verdict=c["verdict"],
            reason=c["reason"],
            route=c["route"],
            rule=c["rule"],
            match=c["match"],
        )

    req = doc["request"]
    winner = doc["winner"]
    return Explanation(
        req["method"],
        req["host"],
        req["path"],
        None if winner is None else cand(winner),
        tuple(cand(c) for c in doc["candidates"]),
    )
