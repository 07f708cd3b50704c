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
