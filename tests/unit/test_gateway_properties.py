"""Property tests: select() invariants and PathPrefix against a segment-list reference."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wakeway.gateway import (
    Request,
    compile_match,
    hostname_matches,
    hostname_rank,
    path_prefix_matches,
    precedence_key,
    select,
)
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

SEGMENTS = st.sampled_from(["a", "b", "ab", "v1", ""])
PATHS = st.lists(SEGMENTS, max_size=4).map(lambda segs: "/" + "/".join(segs))
PLAIN_PATHS = st.lists(SEGMENTS.filter(bool), max_size=3).map(lambda segs: "/" + "/".join(segs))
PREFIXES = st.builds(
    lambda p, slash: p + "/" if slash and p != "/" else p, PLAIN_PATHS, st.booleans()
)
HOSTS = st.sampled_from(["a.example.com", "b.a.example.com", "example.com", "other.org"])
ROUTE_HOSTNAMES = st.sampled_from(
    ["a.example.com", "*.example.com", "*.a.example.com", "example.com"]
)


def segments_reference(prefix: str, path: str) -> bool:
    """Element-wise prefix, stated on lists of path segments."""
    wanted = prefix.rstrip("/").split("/")
    return path.split("/")[: len(wanted)] == wanted


@given(PREFIXES, PATHS)
def test_path_prefix_is_element_wise(prefix: str, path: str) -> None:
    expected = segments_reference(prefix, path)
    assert path_prefix_matches(prefix, path) is expected
    match = RouteMatch(path=PathMatch("PathPrefix", prefix))
    assert compile_match(match).matches(Request("GET", "h", path)) is expected


@given(ROUTE_HOSTNAMES, HOSTS)
def test_wildcards_never_match_their_apex(route_hostname: str, host: str) -> None:
    if route_hostname.startswith("*."):
        apex = route_hostname[2:]
        assert not hostname_matches(route_hostname, apex)
        assert hostname_matches(route_hostname, "x." + apex)
        assert hostname_matches(route_hostname, host) is host.endswith("." + apex)
    else:
        assert hostname_matches(route_hostname, host) is (host == route_hostname)


path_matches = st.one_of(
    st.builds(PathMatch, st.just("Exact"), PLAIN_PATHS),
    st.builds(PathMatch, st.just("PathPrefix"), PREFIXES),
    st.builds(
        PathMatch, st.just("RegularExpression"), st.sampled_from(["/a.*", "/[ab]+", "/.*/v1"])
    ),
)
route_matches = st.builds(
    RouteMatch,
    path=path_matches,
    headers=st.lists(
        st.builds(
            HeaderMatch, st.just("Exact"), st.sampled_from(["x", "y"]), st.sampled_from(["1", "2"])
        ),
        max_size=2,
        unique_by=lambda h: h.name,
    ).map(tuple),
    query_params=st.lists(
        st.builds(
            QueryParamMatch,
            st.just("Exact"),
            st.sampled_from(["q", "r"]),
            st.sampled_from(["1", "2"]),
        ),
        max_size=2,
        unique_by=lambda q: q.name,
    ).map(tuple),
    method=st.sampled_from([None, "GET", "POST"]),
)
rules = st.lists(route_matches, min_size=1, max_size=3).map(
    lambda ms: RouteRule(name=None, matches=tuple(ms))
)


@st.composite
def route_sets(draw: st.DrawFn) -> list[HTTPRoute]:
    n = draw(st.integers(min_value=1, max_value=5))
    return [
        HTTPRoute(
            meta=ObjectMeta(
                draw(st.sampled_from(["a", "b"])),
                f"route-{i}",  # distinct keys: the order of the input must not matter
                generation=1,
                creation_timestamp=float(draw(st.integers(min_value=0, max_value=2))),
            ),
            hostnames=tuple(draw(st.lists(ROUTE_HOSTNAMES, max_size=2, unique=True))),
            parent_refs=(),
            rules=tuple(draw(st.lists(rules, min_size=1, max_size=3))),
        )
        for i in range(n)
    ]


requests = st.builds(
    lambda method, host, path, query, headers: Request(method, host, path, query, headers),
    st.sampled_from(["GET", "POST", "PUT"]),
    HOSTS,
    PATHS,
    st.sampled_from(["", "q=1", "q=2&r=1", "r=2"]),
    st.dictionaries(st.sampled_from(["x", "y"]), st.sampled_from(["1", "2"]), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(route_sets(), requests, st.randoms(use_true_random=False))
def test_select_ignores_the_order_of_routes(
    routes: list[HTTPRoute], req: Request, rnd: random.Random
) -> None:
    shuffled = list(routes)
    rnd.shuffle(shuffled)
    assert select(routes, req) == select(shuffled, req)


@settings(max_examples=300, deadline=None)
@given(route_sets(), requests)
def test_select_returns_the_best_matching_candidate(routes: list[HTTPRoute], req: Request) -> None:
    chosen = select(routes, req)
    best = None
    for route in routes:
        for hostname in route.hostnames or (None,):
            host_rank = hostname_rank(hostname, req.host)
            if host_rank is None:
                continue
            for ri, rule in enumerate(route.rules):
                for mi, m in enumerate(rule.matches):
                    if compile_match(m).matches(req):
                        key = precedence_key(host_rank, route, ri, mi)
                        if best is None or key < best[0]:
                            best = (key, route, ri, mi)
    if best is None:
        assert chosen is None
    else:
        assert chosen is not None
        assert (chosen.route, chosen.rule_index, chosen.match_index) == best[1:]
        assert compile_match(chosen.match).matches(req)
