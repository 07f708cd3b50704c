"""Table tests for the examples in the HTTPRoute API reference, and our regex and ranking rules."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from wakeway.gateway import (
    Request,
    compile_match,
    hostname_matches,
    hostname_rank,
    match_rank,
    path_prefix_matches,
    route_rank,
    select,
)
from wakeway.gateway.request import normalize_host
from wakeway.model.httproute import (
    HeaderMatch,
    HTTPRoute,
    PathMatch,
    QueryParamMatch,
    RouteMatch,
    RouteRule,
)
from wakeway.model.meta import ObjectMeta

pytestmark = pytest.mark.unit


def req(
    path: str = "/",
    *,
    method: str = "GET",
    host: str = "example.com",
    query: str = "",
    headers: Mapping[str, str] | None = None,
) -> Request:
    return Request(method, host, path, query, headers or {})


def http_route(
    name: str,
    *matches: RouteMatch,
    hostnames: tuple[str, ...] = (),
    created: float = 0.0,
    namespace: str = "default",
) -> HTTPRoute:
    """A route with one rule per match, so a selection's rule index names the match."""
    return HTTPRoute(
        meta=ObjectMeta(namespace, name, generation=1, creation_timestamp=created),
        hostnames=hostnames,
        parent_refs=(),
        rules=tuple(RouteRule(name=None, matches=(m,)) for m in matches or (RouteMatch(),)),
    )


# --- hostnames ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route_hostname", "host", "expected"),
    [
        # "*.example.com" matches test.example.com and foo.test.example.com, not example.com.
        ("*.example.com", "test.example.com", True),
        ("*.example.com", "foo.test.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "test.example.net", False),
        ("*.example.com", "badexample.com", False),
        ("test.example.com", "test.example.com", True),
        ("test.example.com", "foo.test.example.com", False),
        ("test.example.com", "example.com", False),
        ("*.example.com", ".example.com", False),  # no label in front
    ],
)
def test_hostname_matching(route_hostname: str, host: str, expected: bool) -> None:
    assert hostname_matches(route_hostname, host) is expected


def test_host_header_case_and_port_are_ignored() -> None:
    route = http_route("r", hostnames=("foo.example.com",))
    for host in ("foo.example.com", "FOO.Example.Com", "foo.example.com:8443", "foo.example.com."):
        assert select([route], req(host=host)) is not None, host


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("Example.COM", "example.com"),
        (" example.com:8080 ", "example.com"),
        ("example.com.", "example.com"),
        ("a:80", "a"),
        ("8080", "8080"),  # digits without a colon are a name, not a port
        ("example.com:http", "example.com:http"),  # not a port number: kept
        ("h:x8", "h:x8"),
        ("a:b:80", "a:b"),  # the port follows the last colon
        ("[::1]", "[::1]"),
        ("[::1]:8443", "[::1]"),
        ("[::1].", "[::1]"),  # a bracketed literal ends at its bracket
        ("[::1]x", "[::1]"),
        ("[::1", "[::1"),  # no closing bracket: kept whole
    ],
)
def test_the_host_is_normalised_once(raw: str, host: str) -> None:
    assert normalize_host(raw) == host
    assert Request("GET", raw, "/").host == host


def test_a_request_defaults_to_the_root_and_no_query() -> None:
    bare = Request("GET", "h", "")
    assert (bare.path, bare.query, dict(bare.headers), dict(bare.params)) == ("/", "", {}, {})
    assert repr(bare) == "Request(GET h/)"
    assert repr(Request("POST", "h", "/p", "a=1&a=2&b")) == "Request(POST h/p?a=1&a=2&b)"
    assert dict(Request("POST", "h", "/p", "a=1&a=2&b").params) == {"a": "1", "b": ""}


def test_route_without_hostnames_matches_every_host() -> None:
    assert select([http_route("r")], req(host="anything.at.all")) is not None


def test_hostname_specificity_orders_non_wildcard_then_length() -> None:
    host = "a.b.example.com"
    ranks = [
        hostname_rank("a.b.example.com", host),
        hostname_rank("*.b.example.com", host),
        hostname_rank("*.example.com", host),
        hostname_rank(None, host),
    ]
    assert all(r is not None for r in ranks)
    assert ranks == sorted(ranks)  # type: ignore[type-var]
    assert hostname_rank("*.other.com", host) is None


def test_more_specific_hostname_wins_over_better_path() -> None:
    """Hostname precedence is applied before any match criterion."""
    wildcard = http_route(
        "wild", RouteMatch(path=PathMatch("Exact", "/x")), hostnames=("*.example.com",)
    )
    exact = http_route("exact", hostnames=("foo.example.com",))
    chosen = select([wildcard, exact], req("/x", host="foo.example.com"))
    assert chosen is not None
    assert chosen.route.name == "exact"
    # Where the specific route does not match at all, the wildcard one still serves.
    exact_only_y = http_route(
        "exact", RouteMatch(path=PathMatch("Exact", "/y")), hostnames=("foo.example.com",)
    )
    chosen = select([wildcard, exact_only_y], req("/x", host="foo.example.com"))
    assert chosen is not None
    assert chosen.route.name == "wild"


def test_longer_wildcard_beats_shorter_and_no_hostnames() -> None:
    routes = [
        http_route("any"),
        http_route("short", hostnames=("*.example.com",)),
        http_route("long", hostnames=("*.b.example.com",)),
    ]
    chosen = select(routes, req(host="a.b.example.com"))
    assert chosen is not None
    assert chosen.route.name == "long"
    chosen = select(routes, req(host="c.example.com"))
    assert chosen is not None
    assert chosen.route.name == "short"
    chosen = select(routes, req(host="example.org"))
    assert chosen is not None
    assert chosen.route.name == "any"


# --- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path_match", "path", "expected"),
    [
        # Exact "/abc" matches only "/abc", not "/abc/", "/Abc" or "/abcd".
        (PathMatch("Exact", "/abc"), "/abc", True),
        (PathMatch("Exact", "/abc"), "/abc/", False),
        (PathMatch("Exact", "/abc"), "/Abc", False),
        (PathMatch("Exact", "/abc"), "/abcd", False),
        # PathPrefix "/abc" matches "/abc", "/abc/" and "/abc/def", not "/abcd".
        (PathMatch("PathPrefix", "/abc"), "/abc", True),
        (PathMatch("PathPrefix", "/abc"), "/abc/", True),
        (PathMatch("PathPrefix", "/abc"), "/abc/def", True),
        (PathMatch("PathPrefix", "/abc"), "/abcd", False),
        (PathMatch("PathPrefix", "/abc"), "/ABC", False),
        # The trailing "/" of a prefix is ignored.
        (PathMatch("PathPrefix", "/abc/"), "/abc", True),
        (PathMatch("PathPrefix", "/abc/"), "/abc/def", True),
        (PathMatch("PathPrefix", "/abc/"), "/abcd", False),
        (PathMatch("PathPrefix", "/"), "/anything/at/all", True),
        (PathMatch("PathPrefix", "/a/b"), "/a/b/c", True),
        (PathMatch("PathPrefix", "/a/b"), "/a/bc", False),
        # Regular expressions match the whole path, with RE2 syntax.
        (PathMatch("RegularExpression", r"/v[0-9]+/users"), "/v2/users", True),
        (PathMatch("RegularExpression", r"/v[0-9]+/users"), "/v2/users/7", False),
        (PathMatch("RegularExpression", r"/v[0-9]+/users"), "/api/v2/users", False),
        (PathMatch("RegularExpression", r"/v[0-9]+/.*"), "/v2/users/7", True),
        (PathMatch("RegularExpression", r"/[a-z]+"), "/ABC", False),
        (PathMatch("RegularExpression", r"(?i)/[a-z]+"), "/ABC", True),
    ],
)
def test_path_matching(path_match: PathMatch, path: str, expected: bool) -> None:
    assert compile_match(RouteMatch(path=path_match)).matches(req(path)) is expected


def test_path_prefix_helper() -> None:
    assert path_prefix_matches("/foo", "/foo")
    assert path_prefix_matches("/foo", "/foo/")
    assert path_prefix_matches("/foo", "/foo/bar")
    assert not path_prefix_matches("/foo", "/foobar")


# --- headers, query params, method -------------------------------------------------------------


def test_rule_matches_example() -> None:
    """HTTPRouteRule.matches: path /foo AND "version: v2", OR path prefix /v2/foo."""
    rule_matches = (
        RouteMatch(
            path=PathMatch("PathPrefix", "/foo"), headers=(HeaderMatch("Exact", "version", "v2"),)
        ),
        RouteMatch(path=PathMatch("PathPrefix", "/v2/foo")),
    )
    route = HTTPRoute(
        ObjectMeta("default", "r", generation=1), (), (), (RouteRule(None, rule_matches),)
    )
    assert select([route], req("/foo", headers={"version": "v2"})) is not None
    assert select([route], req("/foo/bar", headers={"version": "v2"})) is not None
    assert select([route], req("/foo")) is None
    assert select([route], req("/v2/foo")) is not None
    assert select([route], req("/bar", headers={"version": "v2"})) is None


def test_match_example_is_an_and() -> None:
    """HTTPRouteMatch: path starts with /foo AND header "version: v1"."""
    m = compile_match(
        RouteMatch(
            path=PathMatch("PathPrefix", "/foo"), headers=(HeaderMatch("Exact", "version", "v1"),)
        )
    )
    assert m.matches(req("/foo", headers={"version": "v1"}))
    assert not m.matches(req("/foo", headers={"version": "v2"}))
    assert not m.matches(req("/bar", headers={"version": "v1"}))


@pytest.mark.parametrize(
    ("header", "headers", "expected"),
    [
        (HeaderMatch("Exact", "Version", "one"), {"version": "one"}, True),
        (HeaderMatch("Exact", "version", "one"), {"version": "One"}, False),
        (HeaderMatch("Exact", "version", "one"), {}, False),
        (HeaderMatch("RegularExpression", "x-model", "gpt-.*"), {"x-model": "gpt-4"}, True),
        (HeaderMatch("RegularExpression", "x-model", "gpt-.*"), {"x-model": "my-gpt-4"}, False),
        (HeaderMatch("RegularExpression", "x-id", "[0-9]+"), {"x-id": "12a"}, False),
    ],
)
def test_header_matching(header: HeaderMatch, headers: dict[str, str], expected: bool) -> None:
    assert compile_match(RouteMatch(headers=(header,))).matches(req(headers=headers)) is expected


def test_only_the_first_of_equivalent_header_names_counts() -> None:
    """ "foo" and "Foo" are equivalent; the later entry is ignored."""
    m = RouteMatch(headers=(HeaderMatch("Exact", "foo", "a"), HeaderMatch("Exact", "Foo", "b")))
    assert compile_match(m).matches(req(headers={"foo": "a"}))
    assert not compile_match(m).matches(req(headers={"foo": "b"}))
    assert match_rank(m) == match_rank(RouteMatch(headers=(HeaderMatch("Exact", "foo", "a"),)))


@pytest.mark.parametrize(
    ("param", "query", "expected"),
    [
        (QueryParamMatch("Exact", "animal", "whale"), "animal=whale", True),
        (QueryParamMatch("Exact", "animal", "whale"), "ANIMAL=whale", False),  # case-sensitive
        (QueryParamMatch("Exact", "animal", "whale"), "animal=Whale", False),
        (
            QueryParamMatch("Exact", "animal", "whale"),
            "animal=whale&animal=dog",
            True,
        ),  # first value
        (QueryParamMatch("Exact", "animal", "whale"), "animal=dog&animal=whale", False),
        (QueryParamMatch("Exact", "q", "a b"), "q=a%20b", True),
        (QueryParamMatch("RegularExpression", "id", "[0-9]{3}"), "id=123", True),
        (QueryParamMatch("RegularExpression", "id", "[0-9]{3}"), "id=1234", False),
    ],
)
def test_query_param_matching(param: QueryParamMatch, query: str, expected: bool) -> None:
    assert compile_match(RouteMatch(query_params=(param,))).matches(req(query=query)) is expected


def test_only_the_first_entry_for_a_query_param_name_counts() -> None:
    m = RouteMatch(
        query_params=(QueryParamMatch("Exact", "a", "1"), QueryParamMatch("Exact", "a", "2"))
    )
    assert compile_match(m).matches(req(query="a=1"))
    assert not compile_match(m).matches(req(query="a=2"))


def test_method_matching() -> None:
    m = compile_match(RouteMatch(method="POST"))
    assert m.matches(req(method="POST"))
    assert not m.matches(req(method="GET"))


def test_rule_without_matches_matches_everything() -> None:
    route = http_route("r")  # one default match: PathPrefix "/"
    for path in ("/", "/a", "/a/b/c"):
        assert select([route], req(path, method="DELETE", query="x=1")) is not None


# --- precedence ----------------------------------------------------------------------------------

EXACT = RouteMatch(path=PathMatch("Exact", "/foo/bar"))
REGEX = RouteMatch(path=PathMatch("RegularExpression", "/foo/.*"))
LONG_PREFIX = RouteMatch(path=PathMatch("PathPrefix", "/foo/bar"))
SHORT_PREFIX = RouteMatch(path=PathMatch("PathPrefix", "/foo"))
WITH_METHOD = RouteMatch(method="GET")
WITH_TWO_HEADERS = RouteMatch(
    headers=(HeaderMatch("Exact", "a", "1"), HeaderMatch("Exact", "b", "1"))
)
WITH_ONE_HEADER = RouteMatch(headers=(HeaderMatch("Exact", "a", "1"),))
WITH_QUERY = RouteMatch(query_params=(QueryParamMatch("Exact", "q", "1"),))
PLAIN = RouteMatch()

PRECEDENCE_ORDER = [
    EXACT,
    REGEX,
    LONG_PREFIX,
    SHORT_PREFIX,
    WITH_METHOD,
    WITH_TWO_HEADERS,
    WITH_ONE_HEADER,
    WITH_QUERY,
    PLAIN,
]
MATCHES_ALL = req("/foo/bar", method="GET", query="q=1", headers={"a": "1", "b": "1"})


def test_match_rank_follows_the_spec_order() -> None:
    ranks = [match_rank(m) for m in PRECEDENCE_ORDER]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)


@pytest.mark.parametrize("winner", range(len(PRECEDENCE_ORDER)))
def test_each_criterion_beats_everything_after_it(winner: int) -> None:
    """One route per match, all matching the request; listed in reverse to defeat order."""
    contenders = PRECEDENCE_ORDER[winner:]
    routes = [http_route(f"r{i}", m) for i, m in enumerate(contenders)][::-1]
    chosen = select(routes, MATCHES_ALL)
    assert chosen is not None
    assert chosen.match == PRECEDENCE_ORDER[winner]


def test_ties_go_to_the_oldest_route_then_namespace_name() -> None:
    old = http_route("zzz", created=100.0, namespace="b")
    young = http_route("aaa", created=200.0, namespace="a")
    chosen = select([young, old], req())
    assert chosen is not None
    assert chosen.route is old
    same_age = [
        http_route("b", namespace="x"),
        http_route("a", namespace="y"),
        http_route("c", namespace="x"),
    ]
    chosen = select(same_age, req())
    assert chosen is not None
    assert chosen.route.key == "x/b"
    assert route_rank(old) < route_rank(young)


def test_ties_within_a_route_go_to_the_first_rule_then_first_match() -> None:
    rules = (
        RouteRule("first", (RouteMatch(path=PathMatch("PathPrefix", "/b")), PLAIN)),
        RouteRule("second", (PLAIN,)),
    )
    route = HTTPRoute(ObjectMeta("default", "r", generation=1), (), (), rules)
    chosen = select([route], req("/a"))
    assert chosen is not None
    assert (chosen.rule_index, chosen.match_index) == (0, 1)
    chosen = select([route], req("/b"))
    assert chosen is not None
    assert (chosen.rule_index, chosen.match_index) == (0, 0)


def test_a_better_rule_later_in_the_route_wins() -> None:
    rules = (RouteRule("catch-all", (PLAIN,)), RouteRule("exact", (EXACT,)))
    route = HTTPRoute(ObjectMeta("default", "r", generation=1), (), (), rules)
    chosen = select([route], req("/foo/bar"))
    assert chosen is not None
    assert chosen.rule.name == "exact"


def test_regex_path_outranks_a_catch_all_prefix_but_not_exact() -> None:
    routes = [
        http_route("catch-all", PLAIN),
        http_route("regex", RouteMatch(path=PathMatch("RegularExpression", "/items/[0-9]+"))),
        http_route("exact", RouteMatch(path=PathMatch("Exact", "/items/1"))),
    ]
    for path, expected in [("/items/1", "exact"), ("/items/2", "regex"), ("/items/x", "catch-all")]:
        chosen = select(routes, req(path))
        assert chosen is not None, path
        assert chosen.route.name == expected, path


def test_no_match_is_none() -> None:
    assert select([], req()) is None
    assert select([http_route("r", EXACT)], req("/other")) is None
