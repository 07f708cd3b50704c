"""Route identity and tenant isolation in the routing table: forged Host, forged identity."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.routing_fixtures import INTERCEPTOR, route, so
from wakeway.gateway.request import Request
from wakeway.routing import RoutingTable
from wakeway.routing.identity import IDENTITY_HEADER, RouteIdentity

pytestmark = pytest.mark.unit

IDENTITY = RouteIdentity(b"0123456789abcdef-test-key")


def stamping(route_key: str, identity: RouteIdentity = IDENTITY) -> list[dict[str, Any]]:
    return [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {
                "set": [{"name": IDENTITY_HEADER, "value": identity.stamp(route_key)}]
            },
        }
    ]


def tenants() -> RoutingTable:
    """Tenant A and tenant B, each with a route stamping its identity and a bound target;
    B also has an add-on style host entry."""
    a_route = route(
        "web", [{"filters": stamping("team-a/web")}], ns="team-a", hostnames=["a.example.com"]
    )
    b_route = route(
        "web", [{"filters": stamping("team-b/web")}], ns="team-b", hostnames=["b.example.com"]
    )
    a = so("app", ns="team-a", routes=[{"name": "web"}])
    b = so("app", ns="team-b", routes=[{"name": "web"}])
    b_hosts = so("legacy", ns="team-b", hosts=["legacy.b.example.com"])
    return RoutingTable([a, b, b_hosts], [a_route, b_route], INTERCEPTOR, identity=IDENTITY)


def target(table: RoutingTable, host: str, identity: str | None) -> str | None:
    headers = {} if identity is None else {IDENTITY_HEADER: identity}
    found = table.lookup(Request("GET", host, "/", "", headers))
    return None if found is None else found.key


def test_stamp_verifies_and_tampering_does_not() -> None:
    value = IDENTITY.stamp("team-a/web")
    assert IDENTITY.verify(value) == "team-a/web"
    assert IDENTITY.verify(value.replace("team-a", "team-b")) is None
    assert IDENTITY.verify("team-b/web;" + "0" * 32) is None
    assert IDENTITY.verify("team-b/web") is None
    assert RouteIdentity(b"another-key-of-16+bytes").verify(value) is None
    with pytest.raises(ValueError, match=r"^the route identity key must be at least 16 bytes$"):
        RouteIdentity(b"fifteen bytes..")
    assert RouteIdentity(b"sixteen bytes...").verify(value) is None  # 16 is enough
    assert IDENTITY.verify(IDENTITY.stamp("")) is None  # no route, whatever the tag
    assert IDENTITY.verify(" " + value + " ") == "team-a/web"
    assert IDENTITY.verify(IDENTITY.stamp("a;b")) == "a;b"  # the tag follows the last ';'


def test_each_tenant_reaches_its_own_target() -> None:
    table = tenants()
    assert table.problems == ()
    assert target(table, "a.example.com", IDENTITY.stamp("team-a/web")) == "team-a/app"
    assert target(table, "b.example.com", IDENTITY.stamp("team-b/web")) == "team-b/app"


def test_forged_host_through_tenant_a_never_reaches_tenant_b() -> None:
    table = tenants()
    a = IDENTITY.stamp("team-a/web")
    # The Gateway sent it through A's route (so it carries A's identity) with B's Host header.
    assert target(table, "b.example.com", a) is None
    assert target(table, "legacy.b.example.com", a) is None  # not even B's host-based entry


def test_forged_identity_is_refused() -> None:
    table = tenants()
    assert target(table, "b.example.com", "team-b/web") is None
    assert target(table, "b.example.com", "team-b/web;" + "f" * 32) is None
    other = RouteIdentity(b"an attacker's own key....").stamp("team-b/web")
    assert target(table, "b.example.com", other) is None


def test_without_identity_only_host_entries_match() -> None:
    table = tenants()
    assert target(table, "b.example.com", None) is None  # a bound route's rule needs its identity
    assert target(table, "legacy.b.example.com", None) == "team-b/legacy"


def test_bound_rule_that_does_not_stamp_is_reported() -> None:
    r = route("web", [{}], ns="team-a")
    table = RoutingTable(
        [so("app", ns="team-a", routes=[{"name": "web"}])], [r], INTERCEPTOR, identity=IDENTITY
    )
    [problem] = table.problems
    assert problem.reason == "IdentityNotStamped"
    assert IDENTITY.stamp("team-a/web") in problem.message
    wrong = route("web", [{"filters": stamping("team-b/web")}], ns="team-a")
    table = RoutingTable(
        [so("app", ns="team-a", routes=[{"name": "web"}])], [wrong], INTERCEPTOR, identity=IDENTITY
    )
    assert [p.reason for p in table.problems] == ["IdentityNotStamped"]
