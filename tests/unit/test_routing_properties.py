"""Property tests: the indexed table answers exactly what a scan in precedence order answers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.routing_fixtures import INTERCEPTOR, route, so
from wakeway.gateway import select_among
from wakeway.gateway.request import Request
from wakeway.model.httproute import HTTPRoute
from wakeway.model.httpso import HTTPScaledObject
from wakeway.routing import RoutingTable
from wakeway.routing.scaledobjects import reference_lookup

pytestmark = pytest.mark.unit

HOSTS = ["a.example.com", "b.example.com", "x.a.example.com", "example.com", "other.org"]
HOST_PATTERNS = ["a.example.com", "*.example.com", "*.a.example.com", "example.com", "*"]
SEGMENTS = ["a", "b", "ab"]
STAMPS = ["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]

paths = st.lists(st.sampled_from(SEGMENTS), max_size=3).map(lambda s: "/" + "/".join(s))
request_paths = st.tuples(paths, st.booleans()).map(
    lambda p: p[0] + "/" if p[1] and p[0] != "/" else p[0]
)
header_values = st.sampled_from(["1", "2"])


@st.composite
def scaled_objects(draw: st.DrawFn, name: str) -> HTTPScaledObject:
    headers = draw(
        st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["x-a", "x-b"])}, optional={"value": header_values}
            ),
            max_size=2,
            unique_by=lambda h: h["name"],
        )
    )
    return so(
        name,
        created=draw(st.sampled_from(STAMPS)),
        hosts=draw(st.lists(st.sampled_from(HOST_PATTERNS), max_size=2)),
        pathPrefixes=draw(st.lists(paths, max_size=2)),
        headers=headers,
    )


@st.composite
def matches(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Exact", "PathPrefix", "RegularExpression"]))
    value = draw(paths)
    if kind == "RegularExpression":
        value = draw(st.sampled_from(["/a.*", "/(a|b)", "/a/[ab]+", "/.*b"]))
    m: dict[str, Any] = {"path": {"type": kind, "value": value}}
    if draw(st.booleans()):
        m["method"] = draw(st.sampled_from(["GET", "POST"]))
    m["headers"] = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["Exact", "RegularExpression"]),
                    "name": st.sampled_from(["x-a", "x-b"]),
                    "value": header_values,
                }
            ),
            max_size=2,
            unique_by=lambda h: h["name"],
        )
    )
    m["queryParams"] = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.just("Exact"),
                    "name": st.sampled_from(["q", "r"]),
                    "value": header_values,
                }
            ),
            max_size=1,
        )
    )
    return m


@st.composite
def routes(draw: st.DrawFn, name: str) -> HTTPRoute:
    rules = draw(
        st.lists(
            st.fixed_dictionaries({"matches": st.lists(matches(), max_size=2)}),
            min_size=1,
            max_size=3,
        )
    )
    hostnames = draw(
        st.lists(st.sampled_from([h for h in HOST_PATTERNS if h != "*"]), max_size=2, unique=True)
    )
    return route(name, rules, hostnames=hostnames, created=draw(st.sampled_from(STAMPS)))


@st.composite
def requests(draw: st.DrawFn) -> Request:
    headers = draw(st.dictionaries(st.sampled_from(["x-a", "x-b"]), header_values, max_size=2))
    query = draw(st.sampled_from(["", "q=1", "q=2&r=1", "r=2"]))
    return Request(
        draw(st.sampled_from(["GET", "POST"])),
        draw(st.sampled_from(HOSTS)),
        draw(request_paths),
        query,
        headers,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    objects=st.lists(st.sampled_from("abcdef"), max_size=6, unique=True).flatmap(
        lambda names: st.tuples(*(scaled_objects(n) for n in names))
    ),
    reqs=st.lists(requests(), min_size=1, max_size=8),
)
def test_scaled_object_index_equals_reference_scan(
    objects: tuple[HTTPScaledObject, ...], reqs: list[Request]
) -> None:
    table = RoutingTable(objects)
    for req in reqs:
        expected = reference_lookup(objects, req)
        got = table.resolve(req)
        assert (got.host_entry if got else None) == expected, req


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    route_list=st.lists(st.sampled_from("pqrs"), max_size=4, unique=True).flatmap(
        lambda names: st.tuples(*(routes(n) for n in names))
    ),
    reqs=st.lists(requests(), min_size=1, max_size=8),
)
def test_route_index_equals_gateway_reference_select(
    route_list: tuple[HTTPRoute, ...], reqs: list[Request]
) -> None:
    targets = [so(f"t-{r.name}", routes=[{"name": r.name}]) for r in route_list]
    table = RoutingTable(targets, route_list, INTERCEPTOR)
    assert table.problems == ()
    by_route = {t.routes[0].route_key: t for t in targets}
    for req in reqs:
        expected = select_among(((r, by_route[r.key]) for r in route_list), req)
        got = table.resolve(req)
        if expected is None:
            assert got is None, req
            continue
        selection, target = expected
        assert got is not None, req
        assert got.route_hit is not None
        hit = got.route_hit
        assert (hit.route.key, hit.rule_index, hit.match_index) == (
            selection.route.key,
            selection.rule_index,
            selection.match_index,
        ), req
        assert got.target == target


@given(
    objects=st.lists(st.sampled_from("abcdef"), max_size=6, unique=True).flatmap(
        lambda names: st.tuples(*(scaled_objects(n) for n in names))
    ),
    req=requests(),
)
def test_lookup_is_independent_of_input_order(
    objects: tuple[HTTPScaledObject, ...], req: Request
) -> None:
    forward = RoutingTable(objects).lookup(req)
    backward = RoutingTable(reversed(objects)).lookup(req)
    assert forward == backward
    assert sorted(c.claim + c.winner + c.loser for c in RoutingTable(objects).conflicts) == sorted(
        c.claim + c.winner + c.loser for c in RoutingTable(reversed(objects)).conflicts
    )
