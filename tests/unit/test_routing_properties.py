"""Property tests: the indexed table answers exactly what a scan in precedence order answers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.routing_fixtures import INTERCEPTOR, reference_grant, route, so
from tests.unit.routing_oracle import reference_lookup
from wakeway.gateway import select_among
from wakeway.gateway.request import Request
from wakeway.model.httproute import HTTPRoute, RouteMatch
from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.service import ReferenceGrant
from wakeway.routing import RoutingTable
from wakeway.routing.grants import RouteGrants

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
def scaled_objects(
    draw: st.DrawFn, name: str, ns: str = "default", routes: list[dict[str, str]] | None = None
) -> HTTPScaledObject:
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
        ns=ns,
        routes=routes,
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


# --- the whole table against a literal model of the Gateway API -------------------------------
#
# Random worlds: HTTPRoutes in two namespaces (named and unnamed rules, some rules not sent to
# the interceptor), HTTPScaledObjects that bind whole routes or single rules (across namespaces,
# with or without a ReferenceGrant, several claiming one rule) and also have hosts and paths of
# their own; requests whose Host has any case and a port. The model below is written from the
# spec's text, not from wakeway.gateway: bind, keep the rules whose hostnames and conditions
# match, take the first by the spec's precedence; else the HTTPScaledObjects' hosts.

NAMESPACES = ["a", "b"]
RULE_NAMES = ["r1", "r2", "r3"]


def _rule_name_or_identity(rule: Mapping[str, object]) -> object:
    """Rule names are unique within a route; unnamed rules may repeat."""
    name = rule.get("name")
    return name if isinstance(name, str) else id(rule)


@st.composite
def close_matches(draw: st.DrawFn) -> dict[str, Any]:
    """Few distinct matches, so that rules tie on most criteria and the last ones decide."""
    path = draw(
        st.sampled_from(
            [
                ("PathPrefix", "/"),
                ("PathPrefix", "/a"),
                ("Exact", "/a"),
                ("RegularExpression", "/a.*"),
            ]
        )
    )
    m: dict[str, Any] = {"path": {"type": path[0], "value": path[1]}}
    if draw(st.booleans()):
        m["method"] = "GET"
    if draw(st.booleans()):
        m["headers"] = [{"type": "Exact", "name": "x-a", "value": "1"}]
    if draw(st.booleans()):
        m["queryParams"] = [{"type": "Exact", "name": "q", "value": "1"}]
    return m


@st.composite
def named_routes(draw: st.DrawFn, name: str) -> HTTPRoute:
    rules = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "matches": st.lists(
                        st.one_of(matches(), close_matches(), close_matches()), max_size=2
                    )
                },
                optional={
                    "name": st.sampled_from(RULE_NAMES),
                    "backendRefs": st.just([{"name": "elsewhere", "port": 80}]),
                },
            ),
            min_size=1,
            max_size=3,
            unique_by=_rule_name_or_identity,
        )
    )
    hostnames = draw(
        st.lists(st.sampled_from([h for h in HOST_PATTERNS if h != "*"]), max_size=2, unique=True)
    )
    return route(
        name,
        rules,
        ns=draw(st.sampled_from(NAMESPACES)),
        hostnames=hostnames,
        created=draw(st.sampled_from(STAMPS)),
    )


@st.composite
def worlds(
    draw: st.DrawFn,
) -> tuple[list[HTTPScaledObject], list[HTTPRoute], list[ReferenceGrant]]:
    route_list = [draw(named_routes(f"route-{i}")) for i in range(draw(st.integers(1, 4)))]
    targets = []
    for j in range(draw(st.integers(1, 4))):
        ns = draw(st.sampled_from(NAMESPACES))
        bindings = []
        for r in draw(st.lists(st.sampled_from(route_list), min_size=1, max_size=2, unique_by=id)):
            binding = {"name": r.name}
            if r.namespace != ns or draw(st.booleans()):
                binding["namespace"] = r.namespace
            if draw(st.integers(0, 2)) == 0:
                binding["ruleName"] = draw(st.sampled_from(RULE_NAMES))
            bindings.append(binding)
        targets.append(draw(scaled_objects(f"t{j}", ns=ns, routes=bindings)))
    grants = [
        reference_grant(
            to_ns,
            from_ns=next(n for n in NAMESPACES if n != to_ns),
            to_name=draw(st.sampled_from([None, *(r.name for r in route_list)])),
        )
        for to_ns in draw(st.lists(st.sampled_from(NAMESPACES), max_size=2, unique=True))
    ]
    return targets, route_list, grants


@st.composite
def close_worlds(
    draw: st.DrawFn,
) -> tuple[list[HTTPScaledObject], list[HTTPRoute], list[ReferenceGrant]]:
    """Routes of one namespace, all bound, whose rules differ only in the later precedence
    criteria (method, header and query counts, route age and name, rule order)."""

    def rules() -> list[dict[str, Any]]:
        return draw(
            st.lists(
                st.fixed_dictionaries(
                    {"matches": st.lists(close_matches(), min_size=1, max_size=2)}
                ),
                min_size=1,
                max_size=3,
            )
        )

    def hostnames() -> list[str]:
        return draw(st.sampled_from([[], ["a.example.com"], ["*.example.com"]]))

    # Half the time every route has the same rules: only their age and name tell them apart.
    same = (rules(), hostnames()) if draw(st.booleans()) else None
    route_list = []
    for i in range(draw(st.integers(2, 4))):
        route_rules, route_hostnames = same or (rules(), hostnames())
        route_list.append(
            route(
                f"route-{i}",
                route_rules,
                ns="a",
                hostnames=route_hostnames,
                created=draw(st.sampled_from(STAMPS)),
            )
        )
    targets = [
        so(f"t{j}", ns="a", created=draw(st.sampled_from(STAMPS)), routes=[{"name": r.name}])
        for j, r in enumerate(route_list)
    ]
    return targets, route_list, []


@st.composite
def any_case_requests(draw: st.DrawFn) -> tuple[Request, str]:
    """A request whose Host has any case, a port or a trailing dot, and the host it names."""
    req = draw(requests())
    if draw(st.booleans()):  # what close_matches() asks for, or nearly
        req = Request(
            draw(st.sampled_from(["GET", "GET", "POST"])),
            draw(st.sampled_from(["a.example.com", "b.example.com"])),
            "/a",
            draw(st.sampled_from(["q=1", "q=1", ""])),
            draw(st.sampled_from([{"x-a": "1"}, {"x-a": "1"}, {}])),
        )
    host = "".join(c.upper() if draw(st.booleans()) else c for c in req.host)
    raw = host + draw(st.sampled_from(["", ":8080", ".", ".:80"]))
    return Request(req.method, raw, req.path, req.query, req.headers), host.lower()


def _permitted(target: HTTPScaledObject, r: HTTPRoute, grants: list[ReferenceGrant]) -> bool:
    """ReferenceGrant: consent comes from a grant in the route's namespace."""
    if target.namespace == r.namespace:
        return True
    for g in grants:
        if g.meta.namespace != r.namespace:
            continue
        sources = any(
            (s.group, s.kind, s.namespace) == ("http.keda.sh", "HTTPScaledObject", target.namespace)
            for s in g.sources
        )
        to = any(
            (t.group, t.kind) == ("gateway.networking.k8s.io", "HTTPRoute")
            and t.name in (None, r.name)
            for t in g.targets
        )
        if sources and to:
            return True
    return False


def model_owners(
    targets: list[HTTPScaledObject], route_list: list[HTTPRoute], grants: list[ReferenceGrant]
) -> dict[tuple[str, int], HTTPScaledObject]:
    """Who takes each rule's traffic: bound, permitted, sent to the interceptor; among several
    claimants one in the route's namespace, then the oldest, then namespace/name."""
    claims: dict[tuple[str, int], list[HTTPScaledObject]] = {}
    for t in targets:
        for b in t.routes:
            for r in route_list:
                if (r.namespace, r.name) != (b.namespace, b.name) or not _permitted(t, r, grants):
                    continue
                for i, rule in enumerate(r.rules):
                    to_interceptor = any(ref.name == INTERCEPTOR.name for ref in rule.backend_refs)
                    if b.rule_name in (None, rule.name) and to_interceptor:
                        claims.setdefault((r.key, i), []).append(t)
    return {
        key: min(
            ts,
            key=lambda t: (
                t.namespace != key[0].split("/")[0],
                t.meta.creation_timestamp,
                t.key,
            ),
        )
        for key, ts in claims.items()
    }


def _host_chars(hostnames: tuple[str, ...], host: str) -> tuple[int, int] | None:
    """(characters of a matching non-wildcard hostname, characters of a matching hostname),
    the best of the route's; (0, 0) for a route without hostnames; None when none match."""
    if not hostnames:
        return (0, 0)
    best = None
    for h in hostnames:
        if h.startswith("*."):
            ok = host.endswith(h[1:]) and host.count(".") > h.count(".") - 1
            score = (0, len(h)) if ok else None
        else:
            score = (len(h), len(h)) if h == host else None
        if score is not None and (best is None or score > best):
            best = score
    return best


def _value_ok(kind: str, want: str, got: str | None) -> bool:
    if got is None:
        return False
    return got == want if kind == "Exact" else re.fullmatch(want, got) is not None


def _match_ok(m: RouteMatch, req: Request) -> bool:
    if m.method is not None and m.method != req.method:
        return False
    kind, value = m.path.type, m.path.value
    if kind == "Exact" and req.path != value:
        return False
    if kind == "PathPrefix":
        segments = [s for s in value.split("/") if s]
        if req.path.split("/")[1 : len(segments) + 1] != segments:
            return False
    if kind == "RegularExpression" and re.fullmatch(value, req.path) is None:
        return False
    seen: set[str] = set()
    for h in m.headers:
        if h.name.lower() in seen:
            continue  # only the first of equal names counts
        seen.add(h.name.lower())
        if not _value_ok(h.type, h.value, req.headers.get(h.name.lower())):
            return False
    params: dict[str, str] = {}
    for k, v in parse_qsl(req.query, keep_blank_values=True):
        params.setdefault(k, v)
    return all(_value_ok(q.type, q.value, params.get(q.name)) for q in m.query_params)


def model_route(
    owners: dict[tuple[str, int], HTTPScaledObject],
    route_list: list[HTTPRoute],
    req: Request,
    host: str,
) -> tuple[str, int, int, str] | None:
    """The spec's precedence, criterion by criterion, over every matching (rule, match)."""
    best: tuple[object, ...] | None = None
    found = None
    for r in route_list:
        chars = _host_chars(r.hostnames, host)
        if chars is None:
            continue
        for i, rule in enumerate(r.rules):
            owner = owners.get((r.key, i))
            if owner is None:
                continue
            for j, m in enumerate(rule.matches):
                if not _match_ok(m, req):
                    continue
                path_kind = ["Exact", "RegularExpression", "PathPrefix"].index(m.path.type)
                key = (
                    -chars[0],
                    -chars[1],
                    path_kind,
                    -len(m.path.value),
                    m.method is None,
                    -len({h.name.lower() for h in m.headers}),
                    -len({q.name for q in m.query_params}),
                    r.creation_timestamp,
                    r.key,
                    i,
                    j,
                )
                if best is None or key < best:
                    best, found = key, (r.key, i, j, owner.key)
    return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    world=st.one_of(worlds(), close_worlds()),
    reqs=st.lists(any_case_requests(), min_size=1, max_size=16),
)
def test_table_answers_what_a_literal_gateway_api_model_answers(
    world: tuple[list[HTTPScaledObject], list[HTTPRoute], list[ReferenceGrant]],
    reqs: list[tuple[Request, str]],
) -> None:
    targets, route_list, grants = world
    table = RoutingTable(targets, route_list, INTERCEPTOR, RouteGrants.of(grants))
    owners = model_owners(targets, route_list, grants)
    for req, host in reqs:
        got = table.resolve(req)
        expected = model_route(owners, route_list, req, host)
        if expected is not None:
            assert got is not None, req
            assert got.route_hit is not None, (req, got)
            hit = got.route_hit
            assert (hit.route.key, hit.rule_index, hit.match_index, hit.target.key) == expected
            continue
        entry = reference_lookup(targets, req)
        assert (got.host_entry if got else None) == entry, req
