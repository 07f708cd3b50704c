"""Who may bind an HTTPRoute (wakeway.routing.grants), and who gets its identity: table tests
of the one rule the interceptor and the operator share."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.routing_fixtures import INTERCEPTOR, reference_grant, route, so
from wakeway.model.service import ReferenceGrant
from wakeway.routing import RouteGrants, RoutingTable
from wakeway.routing.identity import RouteIdentity

pytestmark = pytest.mark.unit

IDENTITY = RouteIdentity(b"0123456789abcdef-test-key")
SHOP_ROUTE = route("shop", [{}], ns="shop")  # the referent, in the route owner's namespace
THIEF = so("thief", ns="thief", routes=[{"name": "shop", "namespace": "shop"}])


def g(ns: str = "shop", **kw: Any) -> ReferenceGrant:
    return reference_grant(ns, **({"from_ns": "thief"} | kw))


@pytest.mark.parametrize(
    ("grants", "permitted"),
    [
        pytest.param([], False, id="no grant"),
        pytest.param([g()], True, id="grant in the route's namespace"),
        pytest.param([g(to_name="shop")], True, id="grant naming the route"),
        pytest.param([g(to_name="other")], False, id="grant naming another route"),
        pytest.param([g(ns="thief")], False, id="grant in the claimant's own namespace"),
        pytest.param([g(ns="elsewhere")], False, id="grant in a third namespace"),
        pytest.param([g(from_ns="someone")], False, id="grant for another namespace"),
        pytest.param(
            [g(from_group="gateway.networking.k8s.io", from_kind="HTTPRoute")],
            False,
            id="grant from HTTPRoutes (the old direction's from)",
        ),
        pytest.param([g(from_group="")], False, id="from the core group"),
        pytest.param(
            [g(to_group="http.keda.sh", to_kind="HTTPScaledObject")],
            False,
            id="grant to HTTPScaledObjects (the old direction's to)",
        ),
        pytest.param([g(to_group="", to_kind="Service")], False, id="grant to Services"),
        pytest.param(
            [
                reference_grant(
                    "thief",
                    from_ns="shop",
                    from_group="gateway.networking.k8s.io",
                    from_kind="HTTPRoute",
                    to_group="http.keda.sh",
                    to_kind="HTTPScaledObject",
                )
            ],
            False,
            id="the old direction whole: in the claimant's namespace, from the route's",
        ),
    ],
)
def test_cross_namespace_binding_needs_the_route_owners_grant(
    grants: list[ReferenceGrant], permitted: bool
) -> None:
    rule = RouteGrants.of(grants)
    assert rule.permits(SHOP_ROUTE, THIEF) is permitted
    table = RoutingTable([THIEF], [SHOP_ROUTE], INTERCEPTOR, rule, identity=IDENTITY)
    reasons = [p.reason for p in table.problems_of("thief/thief")]
    if permitted:
        assert "RefNotPermitted" not in reasons
        assert table.identities_of("thief/thief") == {"shop/shop": IDENTITY.stamp("shop/shop")}
    else:
        [problem] = table.problems_of("thief/thief")
        assert problem.reason == "RefNotPermitted"
        assert "ReferenceGrant in shop" in problem.message
        assert "HTTPScaledObjects from thief" in problem.message
        assert table.identities_of("thief/thief") == {}


def test_same_namespace_needs_no_grant() -> None:
    owner = so("shop", ns="shop", routes=[{"name": "shop"}])
    assert RouteGrants.of([]).permits(SHOP_ROUTE, owner)


@pytest.mark.parametrize(
    ("owner_created", "thief_created"),
    [
        pytest.param("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", id="thief older"),
        pytest.param("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", id="owner older"),
        pytest.param("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", id="same age"),
    ],
)
def test_the_routes_own_namespace_wins_whatever_the_ages(
    owner_created: str, thief_created: str
) -> None:
    owner = so("shop", ns="shop", routes=[{"name": "shop"}], created=owner_created)
    thief = so(
        "aaa", ns="aaa", routes=[{"name": "shop", "namespace": "shop"}], created=thief_created
    )
    grants = RouteGrants.of([reference_grant("shop", from_ns="aaa")])
    for order in ([owner, thief], [thief, owner]):
        table = RoutingTable(order, [SHOP_ROUTE], INTERCEPTOR, grants, identity=IDENTITY)
        [conflict] = table.conflicts
        assert (conflict.winner, conflict.loser) == ("shop/shop", "aaa/aaa")
        assert table.identities_of("shop/shop") == {"shop/shop": IDENTITY.stamp("shop/shop")}
        assert table.identities_of("aaa/aaa") == {}  # lost: no identity


def test_among_cross_namespace_claimants_the_older_wins() -> None:
    old = so(
        "a",
        ns="z-old",
        routes=[{"name": "shop", "namespace": "shop"}],
        created="2026-01-01T00:00:00Z",
    )
    new = so(
        "a",
        ns="a-new",
        routes=[{"name": "shop", "namespace": "shop"}],
        created="2026-01-02T00:00:00Z",
    )
    grants = RouteGrants.of(
        [reference_grant("shop", from_ns="z-old"), reference_grant("shop", from_ns="a-new")]
    )
    table = RoutingTable([new, old], [SHOP_ROUTE], INTERCEPTOR, grants, identity=IDENTITY)
    [conflict] = table.conflicts
    assert (conflict.winner, conflict.loser) == ("z-old/a", "a-new/a")


def test_no_identity_for_a_route_that_does_not_exist_or_without_a_key() -> None:
    ghost = so("g", ns="shop", routes=[{"name": "nowhere"}])
    table = RoutingTable([ghost], [SHOP_ROUTE], INTERCEPTOR, identity=IDENTITY)
    assert [p.reason for p in table.problems] == ["RouteNotFound"]
    assert table.identities_of("shop/g") == {}
    owner = so("shop", ns="shop", routes=[{"name": "shop"}])
    assert RoutingTable([owner], [SHOP_ROUTE], INTERCEPTOR).identities_of("shop/shop") == {}


def test_identity_published_to_a_bound_rule_that_does_not_stamp_it_yet() -> None:
    """The route author needs the value to write the filter; the binding is the owner's."""
    owner = so("shop", ns="shop", routes=[{"name": "shop"}])
    table = RoutingTable([owner], [SHOP_ROUTE], INTERCEPTOR, identity=IDENTITY)
    assert [p.reason for p in table.problems] == ["IdentityNotStamped"]
    assert table.identities_of("shop/shop") == {"shop/shop": IDENTITY.stamp("shop/shop")}
