"""The routing table: the add-on's host/path/header semantics, HTTPRoute bindings, conflicts."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.routing_fixtures import INTERCEPTOR, reference_grant, route, so
from wakeway.gateway.request import Request
from wakeway.routing import InterceptorRef, RouteGrants, RoutingTable
from wakeway.routing.identity import RouteIdentity
from wakeway.routing.paths import prefixes_of
from wakeway.routing.table import BindingProblem

pytestmark = pytest.mark.unit


def target_of(table: RoutingTable, host: str, path: str = "/", **headers: str) -> str | None:
    req = Request("GET", host, path, "", {k.replace("_", "-"): v for k, v in headers.items()})
    found = table.lookup(req)
    return None if found is None else found.name


# --- HTTPScaledObject hosts / pathPrefixes / headers (the KEDA HTTP add-on's semantics) ---


def test_exact_host_beats_wildcard_beats_catch_all() -> None:
    table = RoutingTable(
        [
            so("exact", hosts=["a.example.com"]),
            so("wild", hosts=["*.example.com"]),
            so("deeper", hosts=["*.b.example.com"]),
            so("any", hosts=["*"]),
        ]
    )
    assert target_of(table, "a.example.com") == "exact"
    assert target_of(table, "A.Example.com:8080") == "exact"
    assert target_of(table, "c.example.com") == "wild"
    assert target_of(table, "x.y.example.com") == "wild"
    assert target_of(table, "x.b.example.com") == "deeper"
    assert target_of(table, "example.com") == "any"  # a wildcard never matches the apex
    assert target_of(table, "other.org") == "any"


def test_no_hosts_is_catch_all_and_nothing_is_none() -> None:
    assert target_of(RoutingTable([so("x")]), "anything.test") == "x"
    assert target_of(RoutingTable([so("x", hosts=["a.test"])]), "b.test") is None
    assert target_of(RoutingTable(), "a.test") is None


def test_longest_element_wise_prefix() -> None:
    table = RoutingTable(
        [
            so("root", hosts=["h"]),
            so("api", hosts=["h"], pathPrefixes=["/api"]),
            so("v1", hosts=["h"], pathPrefixes=["/api/v1/"]),
        ]
    )
    assert target_of(table, "h", "/") == "root"
    assert target_of(table, "h", "/api") == "api"
    assert target_of(table, "h", "/api/") == "api"
    assert target_of(table, "h", "/apix") == "root"
    assert target_of(table, "h", "/api/v1") == "v1"
    assert target_of(table, "h", "/api/v1/users") == "v1"
    assert target_of(table, "h", "/api/v10") == "api"


def test_prefix_only_without_root_refuses_other_paths() -> None:
    table = RoutingTable([so("api", hosts=["h"], pathPrefixes=["/api"])])
    assert target_of(table, "h", "/other") is None


def test_headers_are_anded_and_valueless_means_present() -> None:
    table = RoutingTable(
        [
            so("plain", hosts=["h"]),
            so("tenant", hosts=["h"], headers=[{"name": "X-Tenant", "value": "a"}]),
            so(
                "tenant-debug",
                hosts=["h"],
                headers=[{"name": "X-Tenant", "value": "a"}, {"name": "X-Debug"}],
            ),
        ]
    )
    assert target_of(table, "h") == "plain"
    assert target_of(table, "h", x_tenant="a") == "tenant"
    assert target_of(table, "h", x_tenant="b") == "plain"
    assert target_of(table, "h", x_tenant="a", x_debug="") == "tenant-debug"
    assert target_of(table, "h", x_debug="1") == "plain"
    assert target_of(table, "h", x_tenant="b, a") == "tenant"  # a repeated header


def test_header_mismatch_falls_back_to_less_specific_entry() -> None:
    table = RoutingTable(
        [
            so("gated", hosts=["h"], pathPrefixes=["/api"], headers=[{"name": "x-beta"}]),
            so("root", hosts=["*"]),
        ]
    )
    assert target_of(table, "h", "/api", x_beta="1") == "gated"
    assert target_of(table, "h", "/api") == "root"


def test_ties_go_to_more_headers_then_older_then_name() -> None:
    older = so("b-older", hosts=["h"], created="2025-01-01T00:00:00Z")
    newer = so("a-newer", hosts=["h"], created="2026-01-01T00:00:00Z")
    table = RoutingTable([newer, older])
    assert target_of(table, "h") == "b-older"
    same_age = RoutingTable([so("zeta", hosts=["h"]), so("alpha", hosts=["h"])])
    assert target_of(same_age, "h") == "alpha"


def test_conflicts_are_reported_deterministically() -> None:
    older = so("first", hosts=["h"], pathPrefixes=["/x"], created="2025-01-01T00:00:00Z")
    newer = so("second", hosts=["h"], pathPrefixes=["/x/"])
    for order in ([older, newer], [newer, older]):
        table = RoutingTable(order)
        assert target_of(table, "h", "/x") == "first"
        [conflict] = table.conflicts
        assert (conflict.winner, conflict.loser) == ("default/first", "default/second")
        assert "host h path /x" in conflict.claim
        assert table.conflicts_of("default/second") == [conflict]
    # Different headers are not a conflict: both can receive traffic.
    distinct = RoutingTable(
        [older, so("third", hosts=["h"], pathPrefixes=["/x"], headers=[{"name": "a"}])]
    )
    assert distinct.conflicts == ()


# --- HTTPRoute rules bound to HTTPScaledObjects ---


def test_bound_route_rules_route_with_gateway_semantics() -> None:
    web = so("web", routes=[{"name": "site"}])
    api = so("api", routes=[{"name": "site", "ruleName": "api"}])
    site = route(
        "site",
        [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]},
            {"name": "api", "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}]},
        ],
        hostnames=["shop.example.com"],
    )
    table = RoutingTable([api, web], [site], INTERCEPTOR)
    assert table.problems == ()
    assert target_of(table, "shop.example.com", "/api/cart") == "api"
    assert target_of(table, "shop.example.com", "/") == "web"
    assert target_of(table, "other.example.com", "/") is None
    resolution = table.resolve(Request("GET", "shop.example.com", "/api"))
    assert resolution is not None
    assert resolution.route_hit is not None
    assert resolution.route_hit.route.key == "default/site"
    assert resolution.route_hit.rule_index == 1


def test_bound_routes_come_before_scaled_object_hosts() -> None:
    by_host = so("by-host", hosts=["shop.example.com"], pathPrefixes=["/api/v1"])
    by_route = so("by-route", routes=[{"name": "site"}])
    site = route("site", [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}]}])
    table = RoutingTable([by_host, by_route], [site], INTERCEPTOR)
    assert target_of(table, "shop.example.com", "/api/v1/x") == "by-route"
    assert target_of(table, "shop.example.com", "/other") is None


@pytest.mark.parametrize(
    ("binding", "rules", "reason"),
    [
        ({"name": "missing"}, [{}], "RouteNotFound"),
        ({"name": "r", "ruleName": "nope"}, [{"name": "yes"}], "RuleNotFound"),
        (
            {"name": "r"},
            [{"backendRefs": [{"name": "elsewhere", "port": 80}]}],
            "NotRoutedToInterceptor",
        ),
        (
            {"name": "r"},
            [
                {
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {
                                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}
                            },
                        }
                    ]
                }
            ],
            "FilterBreaksRematch",
        ),
        (
            {"name": "r"},
            [{"filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "internal"}}]}],
            "FilterBreaksRematch",
        ),
    ],
)
def test_binding_problems_are_reported_and_carry_no_traffic(
    binding: dict[str, str], rules: list[dict[str, object]], reason: str
) -> None:
    target = so("t", routes=[binding])
    table = RoutingTable([target], [route("r", rules)], INTERCEPTOR)
    [problem] = table.problems_of("default/t")
    assert problem.reason == reason
    assert problem.route == f"default/{binding['name']}"
    assert problem.message
    assert target_of(table, "any.host", "/") is None


def test_route_in_another_namespace_needs_permission() -> None:
    target = so("t", ns="team-b", routes=[{"name": "r", "namespace": "team-a"}])
    r = route("r", [{}], ns="team-a")
    denied = RoutingTable([target], [r], INTERCEPTOR)
    assert [p.reason for p in denied.problems] == ["RefNotPermitted"]
    assert target_of(denied, "h", "/") is None
    grant = reference_grant("team-a", from_ns="team-b")
    allowed = RoutingTable([target], [r], INTERCEPTOR, RouteGrants.of([grant]))
    assert allowed.problems == ()
    assert target_of(allowed, "h", "/") == "t"


def test_rule_bound_twice_goes_to_the_older_object() -> None:
    r = route("r", [{}])
    old = so("old", routes=[{"name": "r"}], created="2025-01-01T00:00:00Z")
    new = so("new", routes=[{"name": "r"}])
    for order in ([old, new], [new, old]):
        table = RoutingTable(order, [r], INTERCEPTOR)
        assert target_of(table, "h", "/") == "old"
        [conflict] = table.conflicts
        assert (conflict.source, conflict.winner, conflict.loser) == (
            "HTTPRoute",
            "default/old",
            "default/new",
        )
        assert (conflict.route, conflict.rule) == ("default/r", 0)  # fields, not text to parse


def test_without_interceptor_ref_any_backend_is_accepted() -> None:
    target = so("t", routes=[{"name": "r"}])
    r = route("r", [{"backendRefs": [{"name": "whatever", "port": 80}]}])
    assert target_of(RoutingTable([target], [r], None), "h", "/") == "t"


def test_redirecting_rule_is_reported_even_without_an_interceptor_ref() -> None:
    target = so("t", routes=[{"name": "r"}])
    redirect = {"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}}
    r = route("r", [{"filters": [redirect], "backendRefs": []}])
    table = RoutingTable([target], [r], None)
    assert [p.reason for p in table.problems] == ["FilterBreaksRematch"]
    assert "RequestRedirect" in table.problems[0].message
    assert [p.reason for p in RoutingTable([target], [r], INTERCEPTOR).problems] == [
        "NotRoutedToInterceptor"
    ]


REWRITE = {"type": "URLRewrite", "urlRewrite": {"hostname": "internal"}}
ELSEWHERE = [{"name": "elsewhere", "port": 80}]


@pytest.mark.parametrize(
    ("binding", "rules", "problem"),
    [
        (
            {"name": "r"},
            [{"name": "a"}, {"backendRefs": ELSEWHERE}],  # the second rule, unnamed: #1
            BindingProblem(
                "default/t",
                "default/r",
                None,
                "NotRoutedToInterceptor",
                "HTTPRoute default/r rule #1 has no backendRef to the interceptor Service "
                "wakeway/wakeway-interceptor",
            ),
        ),
        (
            {"name": "r", "ruleName": "b"},
            [{"name": "a"}, {"name": "b", "filters": [REWRITE]}],
            BindingProblem(
                "default/t",
                "default/r",
                "b",
                "FilterBreaksRematch",
                "HTTPRoute default/r rule 'b' uses URLRewrite: the interceptor would see a "
                "rewritten or redirected request that no longer matches the rule",
            ),
        ),
        (
            {"name": "r", "ruleName": "nope"},
            [{"name": "yes"}],
            BindingProblem(
                "default/t",
                "default/r",
                "nope",
                "RuleNotFound",
                "HTTPRoute default/r has no rule named 'nope'",
            ),
        ),
    ],
)
def test_binding_problems_say_exactly_what_and_where(
    binding: dict[str, str], rules: list[dict[str, object]], problem: BindingProblem
) -> None:
    table = RoutingTable([so("t", routes=[binding])], [route("r", rules)], INTERCEPTOR)
    assert table.problems_of("default/t") == [problem]


def test_a_route_without_rules_is_named() -> None:
    """The API server defaults an empty rules list to one rule; a route built otherwise has
    none, and binding it says so."""
    bare = dataclasses.replace(route("r", [{}]), rules=())
    table = RoutingTable([so("t", routes=[{"name": "r"}])], [bare], INTERCEPTOR)
    assert table.problems_of("default/t") == [
        BindingProblem(
            "default/t", "default/r", None, "NoRules", "HTTPRoute default/r has no rules"
        )
    ]


def test_a_rule_not_stamping_the_identity_is_named_with_the_value_it_must_set() -> None:
    identity = RouteIdentity(b"0123456789abcdef-test-key")
    table = RoutingTable(
        [so("t", routes=[{"name": "r"}])],
        [route("r", [{"name": "main"}])],
        INTERCEPTOR,
        identity=identity,
    )
    want = identity.stamp("default/r")
    assert table.problems_of("default/t") == [
        BindingProblem(
            "default/t",
            "default/r",
            "main",
            "IdentityNotStamped",
            f"HTTPRoute default/r rule 'main' must set the header x-wakeway-route: {want} with a "
            "RequestHeaderModifier filter",
        ),
    ]


def test_a_contested_rule_is_named_in_the_conflict() -> None:
    r = route("r", [{"name": "first"}, {}])
    old = so("old", routes=[{"name": "r"}], created="2025-01-01T00:00:00Z")
    new = so("new", routes=[{"name": "r"}])
    claims = {c.claim for c in RoutingTable([old, new], [r], INTERCEPTOR).conflicts}
    assert claims == {"HTTPRoute default/r rule 'first'", "HTTPRoute default/r rule #1"}


@pytest.mark.parametrize(
    ("ref", "route_namespace", "referenced"),
    [
        ({"name": "wakeway-interceptor", "namespace": "wakeway", "port": 8080}, "app", True),
        (
            {"group": "core", "name": "wakeway-interceptor", "namespace": "wakeway", "port": 8080},
            "app",
            True,
        ),
        ({"name": "wakeway-interceptor", "port": 8080}, "wakeway", True),  # the route's own
        ({"name": "wakeway-interceptor", "port": 8080}, "app", False),
        ({"name": "wakeway-interceptor", "namespace": "wakeway", "port": 9090}, "app", False),
        ({"name": "other", "namespace": "wakeway", "port": 8080}, "app", False),
        (
            {"group": "example.com", "name": "wakeway-interceptor", "namespace": "wakeway"},
            "app",
            False,
        ),
    ],
)
def test_which_backend_refs_name_the_interceptor(
    ref: dict[str, object], route_namespace: str, referenced: bool
) -> None:
    [rule] = route("r", [{"backendRefs": [ref]}], ns=route_namespace).rules
    [backend] = rule.backend_refs
    assert INTERCEPTOR.is_referenced_by(backend, route_namespace) is referenced
    anywhere = InterceptorRef(None, "wakeway-interceptor")  # local mode: any namespace, any port
    named = ref["name"] == "wakeway-interceptor" and ref.get("group", "") != "example.com"
    assert anywhere.is_referenced_by(backend, route_namespace) is named


def test_a_request_through_a_bound_rule_says_which() -> None:
    table = RoutingTable([so("t", routes=[{"name": "r"}])], [route("r", [{}])], INTERCEPTOR)
    found = table.resolve(Request("GET", "h", "/", "", {}))
    assert found is not None
    assert found.route_hit is not None
    assert (found.route_hit.route.key, found.route_hit.rule_index) == ("default/r", 0)


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("/a/b/", ["/a/b", "/a", ""]),
        ("/a/b", ["/a/b", "/a", ""]),
        ("/", [""]),
        ("", [""]),
        ("a/b", ["/a/b", "/a", ""]),  # no leading slash: as if it had one
        ("/a b/c d", ["/a b/c d", "/a b", ""]),  # a space is no separator
    ],
)
def test_every_element_wise_prefix_of_a_path(path: str, keys: list[str]) -> None:
    assert list(prefixes_of(path)) == keys
