"""``wakeway explain``'s pure core: the winner is the routing table's, every other candidate
says why it did not get the request."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.routing_fixtures import INTERCEPTOR, reference_grant, route, so
from wakeway.gateway.request import Request
from wakeway.model.httproute import HTTPRoute
from wakeway.model.httpso import HTTPScaledObject
from wakeway.routing import RouteGrants, RoutingTable
from wakeway.routing.explain import (
    CONFLICT,
    HEADER,
    HOST,
    METHOD,
    NOT_BOUND,
    OUTRANKED,
    PATH,
    QUERY,
    SELECTED,
    Candidate,
    Explanation,
    explain,
    explanation_from_json,
    explanation_json,
)

pytestmark = pytest.mark.unit


def bind(name: str, rule: str | None = None, ns: str = "default") -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "namespace": ns}
    if rule is not None:
        out["ruleName"] = rule
    return out


def prefix(value: str, **extra: Any) -> dict[str, Any]:
    return {"path": {"type": "PathPrefix", "value": value}, **extra}


API_ROUTE = route(
    "shop",
    [
        {"name": "api", "matches": [prefix("/api")]},
        {"name": "admin", "matches": [prefix("/admin", method="POST")]},
        {
            "name": "beta",
            "matches": [prefix("/", headers=[{"type": "Exact", "name": "x-beta", "value": "1"}])],
        },
        {
            "name": "debug",
            "matches": [
                prefix("/", queryParams=[{"type": "Exact", "name": "debug", "value": "1"}])
            ],
        },
    ],
    hostnames=["shop.example.com"],
)
SHOP = so("shop", routes=[bind("shop")])
HOSTS_APP = so("web", hosts=["shop.example.com"], pathPrefixes=["/"])
CATCH_ALL = so("fallback")


def run(
    req: Request,
    targets: list[HTTPScaledObject],
    routes: list[HTTPRoute],
    grants: RouteGrants | None = None,
) -> Explanation:
    e = explain(targets, routes, req, INTERCEPTOR, grants or RouteGrants.of(()))
    table = RoutingTable(targets, routes, INTERCEPTOR, grants or RouteGrants.of(()))
    found = table.lookup(req)
    # The explanation never disagrees with the table the interceptor routes by.
    assert (e.winner.target if e.winner else None) == (found.key if found else None)
    return e


def verdicts(e: Explanation) -> dict[str, str]:
    return {c.claim.split(":")[0]: c.verdict for c in e.candidates}


@pytest.mark.parametrize(
    ("req", "winner", "why_not"),
    [
        (
            Request("GET", "shop.example.com", "/api/items"),
            "HTTPRoute default/shop rule api match #0",
            {
                "HTTPRoute default/shop rule admin match #0": METHOD,
                "HTTPRoute default/shop rule beta match #0": HEADER,
                "HTTPRoute default/shop rule debug match #0": QUERY,
                "host shop.example.com path /": OUTRANKED,
                "host * path /": OUTRANKED,
            },
        ),
        (
            Request("POST", "shop.example.com", "/admin/x"),
            "HTTPRoute default/shop rule admin match #0",
            {"HTTPRoute default/shop rule api match #0": PATH},
        ),
        (
            Request("GET", "shop.example.com", "/", headers={"x-beta": "1"}),
            "HTTPRoute default/shop rule beta match #0",
            {"HTTPRoute default/shop rule debug match #0": QUERY},
        ),
        (
            Request("GET", "shop.example.com", "/", query="debug=1"),
            "HTTPRoute default/shop rule debug match #0",
            {"HTTPRoute default/shop rule beta match #0": HEADER},
        ),
        (
            Request("GET", "shop.example.com", "/other"),
            "host shop.example.com path /",
            {"HTTPRoute default/shop rule api match #0": PATH, "host * path /": OUTRANKED},
        ),
        (
            Request("GET", "elsewhere.test", "/api"),
            "host * path /",
            {
                "HTTPRoute default/shop rule api match #0": HOST,
                "host shop.example.com path /": HOST,
            },
        ),
    ],
)
def test_winner_and_why_each_other_candidate_lost(
    req: Request, winner: str, why_not: dict[str, str]
) -> None:
    e = run(req, [SHOP, HOSTS_APP, CATCH_ALL], [API_ROUTE])
    assert e.winner is not None
    assert e.winner.claim.startswith(winner)
    got = verdicts(e)
    for claim, verdict in why_not.items():
        assert got[claim] == verdict, (claim, e.candidates)
    # The winner is never also among the others.
    assert winner not in got


def test_reasons_name_what_differs() -> None:
    e = run(Request("GET", "shop.example.com", "/api"), [SHOP], [API_ROUTE])
    reasons = {c.rule: c.reason for c in e.candidates}
    assert reasons["admin"] == "method GET is not POST"
    assert reasons["beta"] == "header x-beta is absent, wants Exact '1'"
    assert "query parameter debug" in reasons["debug"]
    other_host = run(Request("GET", "a.test", "/api"), [SHOP], [API_ROUTE])
    assert other_host.winner is None
    assert "host a.test is not among hostnames ['shop.example.com']" in {
        c.reason for c in other_host.candidates
    }


def test_nothing_matches_every_candidate_says_why() -> None:
    e = run(Request("GET", "nowhere.test", "/"), [HOSTS_APP], [])
    assert e.winner is None
    assert [(c.target, c.verdict) for c in e.candidates] == [("default/web", HOST)]


def test_refused_bindings_are_candidates_that_were_never_bound() -> None:
    other_ns = route("shared", [{"matches": [prefix("/")]}], ns="gateway")
    missing = so("ghost", routes=[bind("absent")])
    cross = so("cross", routes=[bind("shared", ns="gateway")])
    e = run(Request("GET", "x.test", "/"), [missing, cross], [other_ns])
    reasons = {c.target: (c.verdict, c.reason) for c in e.candidates}
    assert reasons["default/ghost"][0] == NOT_BOUND
    assert reasons["default/ghost"][1].startswith("RouteNotFound:")
    assert reasons["default/cross"][0] == NOT_BOUND
    assert reasons["default/cross"][1].startswith("RefNotPermitted:")
    # With the route owner's ReferenceGrant, the same binding wins.
    granted = RouteGrants.of([reference_grant("gateway", from_ns="default")])
    e = run(Request("GET", "x.test", "/"), [missing, cross], [other_ns], granted)
    assert e.winner is not None
    assert e.winner.target == "default/cross"


def test_a_rule_claimed_twice_names_the_owner() -> None:
    first = so("first", created="2026-01-01T00:00:00Z", routes=[bind("shop", "api")])
    second = so("second", created="2026-02-01T00:00:00Z", routes=[bind("shop", "api")])
    e = run(Request("GET", "shop.example.com", "/api"), [first, second], [API_ROUTE])
    assert e.winner is not None
    assert e.winner.target == "default/first"
    lost = [c for c in e.candidates if c.target == "default/second"]
    assert [c.verdict for c in lost] == [CONFLICT]
    assert "default/first" in lost[0].reason


def test_json_round_trip() -> None:
    e = run(Request("GET", "shop.example.com", "/api"), [SHOP, CATCH_ALL], [API_ROUTE])
    doc = explanation_json(e)
    assert doc["winner"]["object"] == "default/shop"
    assert doc["winner"]["rule"] == "api"
    assert doc["request"] == {"method": "GET", "host": "shop.example.com", "path": "/api"}
    assert explanation_from_json(doc) == e


def _scene() -> tuple[list[HTTPScaledObject], list[HTTPRoute]]:
    """An object claiming a host, a path and two headers; a catch-all; another host; and an
    object bound to a route rule that wants POST, a header and a query parameter."""
    web = so(
        "web",
        hosts=["shop.example.com"],
        pathPrefixes=["/api"],
        headers=[{"name": "x-tenant", "value": "blue"}, {"name": "x-beta"}],
    )
    anything = so("any", created="2026-02-01T00:00:00Z")
    docs = so("docs", hosts=["docs.example.com"])
    routed = so("routed", routes=[bind("r")])
    match = {
        "path": {"type": "PathPrefix", "value": "/cart"},
        "method": "POST",
        "headers": [{"name": "x-a", "value": "1"}],
        "queryParams": [{"name": "q", "value": "1"}],
    }
    r = route("r", [{"matches": [match]}], hostnames=["shop.example.com"])
    return [web, anything, docs, routed], [r]


RULE_CLAIM = (
    "HTTPRoute default/r rule #0 match #0: PathPrefix /cart, method POST, header x-a=1, query q=1"
)
WEB_CLAIM = "host shop.example.com path /api header x-tenant=blue header x-beta"


def host_candidate(target: str, claim: str, verdict: str, reason: str) -> Candidate:
    return Candidate(f"default/{target}", "HTTPScaledObject", claim, verdict, reason)


def rule_candidate(verdict: str, reason: str) -> Candidate:
    return Candidate(
        "default/routed", "HTTPRoute", RULE_CLAIM, verdict, reason, "default/r", "#0", 0
    )


def test_an_object_claim_wins_and_every_other_says_exactly_why_not() -> None:
    targets, routes = _scene()
    headers = {"x-tenant": "blue", "x-beta": "yes"}
    got = explain(targets, routes, Request("GET", "shop.example.com", "/api/x", "", headers))
    assert got == Explanation(
        "GET",
        "shop.example.com",
        "/api/x",
        host_candidate(
            "web", WEB_CLAIM, SELECTED, "the most specific host and path prefix that match"
        ),
        (
            rule_candidate(METHOD, "method GET is not POST"),
            host_candidate(
                "any",
                "host * path /",
                OUTRANKED,
                "matches, but default/web's claim host shop.example.com path /api is more "
                "specific or older",
            ),
            host_candidate(
                "docs",
                "host docs.example.com path /",
                HOST,
                "host shop.example.com does not match docs.example.com",
            ),
        ),
    )


def test_a_bound_rule_wins_and_host_claims_are_told_why_not() -> None:
    targets, routes = _scene()
    req = Request("POST", "shop.example.com", "/cart", "q=1", {"x-a": "1"})
    got = explain(targets, routes, req)
    assert got.winner == rule_candidate(
        SELECTED, "the most specific bound rule that matches the request"
    )
    assert got.candidates == (
        host_candidate("web", WEB_CLAIM, PATH, "path /cart is not under /api"),
        host_candidate(
            "any",
            "host * path /",
            OUTRANKED,
            "matches, but HTTPRoute default/r rule #0 match #0 comes first (bound HTTPRoute "
            "rules precede host claims; among rules, Gateway API precedence)",
        ),
        host_candidate(
            "docs",
            "host docs.example.com path /",
            HOST,
            "host shop.example.com does not match docs.example.com",
        ),
    )


@pytest.mark.parametrize(
    ("req", "rule_verdict", "web_verdict"),
    [
        (
            Request("POST", "shop.example.com", "/cart", "q=1", {}),
            (HEADER, "header x-a is absent, wants Exact '1'"),
            (PATH, "path /cart is not under /api"),
        ),
        (
            Request("POST", "shop.example.com", "/cart", "q=2", {"x-a": "2"}),
            (HEADER, "header x-a is '2', wants Exact '1'"),
            (PATH, "path /cart is not under /api"),
        ),
        (
            Request("POST", "shop.example.com", "/cart", "q=2", {"x-a": "1"}),
            (QUERY, "query parameter q does not match Exact '1'"),
            (PATH, "path /cart is not under /api"),
        ),
        (
            Request("POST", "shop.example.com", "/api", "", {"x-tenant": "blue"}),
            (PATH, "path /api does not match PathPrefix /cart"),
            (HEADER, "the request lacks a header this claim requires"),
        ),
    ],
)
def test_each_failed_condition_is_named(
    req: Request, rule_verdict: tuple[str, str], web_verdict: tuple[str, str]
) -> None:
    targets, routes = _scene()
    got = explain(targets, routes, req)
    by_target = {c.target: (c.verdict, c.reason) for c in got.candidates}
    assert by_target["default/routed"] == rule_verdict
    assert by_target["default/web"] == web_verdict


def test_an_explanation_survives_json() -> None:
    targets, routes = _scene()
    got = explain(
        targets, routes, Request("POST", "shop.example.com", "/cart", "q=1", {"x-a": "1"})
    )
    assert explanation_from_json(explanation_json(got)) == got
    none = explain(targets, routes, Request("GET", "nowhere.example.com", "/nothing", "", {}))
    assert none.winner is not None  # the catch-all takes it
    assert explanation_from_json(explanation_json(none)) == none
