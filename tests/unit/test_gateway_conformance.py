"""The matching scenarios of the Gateway API conformance suite, as table tests on select().

Each scenario restates the routes of one conformance test and the backend it expects for each
request (None where it expects a 404). Where a scenario depends on Gateway listener hostnames,
the routes carry the hostnames that survive the listener intersection, since that is what
reaches the data path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from wakeway.gateway import Request, select
from wakeway.model.httproute import HTTPRoute, parse_httproute

pytestmark = pytest.mark.unit

NS = "gateway-conformance-infra"

Case = tuple[str, str, Mapping[str, str], str | None]  # (method, host/path?query, headers, backend)


def routes_from(manifest: str) -> list[HTTPRoute]:
    docs: list[Any] = [d for d in yaml.safe_load_all(manifest) if d]
    return [parse_httproute(d, default_namespace=NS) for d in docs]


def backend_for(
    routes: list[HTTPRoute], method: str, url: str, headers: Mapping[str, str]
) -> str | None:
    host, _, rest = url.partition("/")
    path, _, query = ("/" + rest).partition("?")
    lowered = {name.lower(): value for name, value in headers.items()}
    selection = select(routes, Request(method, host or "gateway.local", path, query, lowered))
    if selection is None:
        return None
    return selection.rule.backend_refs[0].name


def check(routes: list[HTTPRoute], cases: list[Case]) -> None:
    failures = []
    for method, url, headers, expected in cases:
        got = backend_for(routes, method, url, headers)
        if got != expected:
            failures.append(f"{method} {url} {dict(headers)}: expected {expected}, got {got}")
    assert not failures, "\n".join(failures)


def route(name: str, rules: str, hostnames: str = "", created: str = "") -> str:
    meta_created = f"\n  creationTimestamp: {created!r}" if created else ""
    host_block = f"\n  hostnames: {hostnames}" if hostnames else ""
    return (
        "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
        f"metadata:\n  name: {name}{meta_created}\n"
        f"spec:\n  parentRefs: [{{name: same-namespace}}]{host_block}\n  rules:\n{rules}"
    )


def backend(name: str) -> str:
    return f"    backendRefs: [{{name: {name}, port: 8080}}]\n"


def catch_all(name: str) -> str:
    """A rule without matches, which matches every request."""
    return f"  - backendRefs: [{{name: {name}, port: 8080}}]\n"


V1, V2, V3 = "infra-backend-v1", "infra-backend-v2", "infra-backend-v3"


def test_httproute_matching() -> None:
    """HTTPRouteMatching: one route, path OR header matches per rule."""
    routes = routes_from(
        route(
            "matching",
            "  - matches:\n"
            "    - path: {type: PathPrefix, value: /}\n"
            "    - headers: [{name: version, value: one}]\n" + backend(V1) + "  - matches:\n"
            "    - path: {type: PathPrefix, value: /v2}\n"
            "    - headers: [{name: version, value: two}]\n" + backend(V2),
        )
    )
    check(
        routes,
        [
            ("GET", "/", {}, V1),
            ("GET", "/example", {}, V1),
            ("GET", "/", {"Version": "one"}, V1),
            ("GET", "/v2", {}, V2),
            ("GET", "/v2/example", {}, V2),
            ("GET", "/", {"Version": "two"}, V2),
        ],
    )


def test_httproute_exact_path_matching() -> None:
    """HTTPRouteExactPathMatching."""
    routes = routes_from(
        route(
            "exact-matching",
            "  - matches: [{path: {type: Exact, value: /one}}]\n"
            + backend(V1)
            + "  - matches: [{path: {type: Exact, value: /two}}]\n"
            + backend(V2),
        )
    )
    check(
        routes,
        [
            ("GET", "/one", {}, V1),
            ("GET", "/two", {}, V2),
            ("GET", "/", {}, None),
            ("GET", "/one/example", {}, None),
            ("GET", "/two/", {}, None),
            ("GET", "/Two", {}, None),
        ],
    )


def test_httproute_header_matching() -> None:
    """HTTPRouteHeaderMatching: AND within a match, OR across matches, more headers win."""
    rules = (
        "  - matches: [{headers: [{name: version, value: one}]}]\n"
        + backend(V1)
        + "  - matches: [{headers: [{name: version, value: two}]}]\n"
        + backend(V2)
        + "  - matches: [{headers: [{name: version, value: two}, {name: color, value: orange}]}]\n"
        + backend(V1)
        + "  - matches:\n"
        "    - headers: [{name: color, value: blue}]\n"
        "    - headers: [{name: color, value: green}]\n" + backend(V1) + "  - matches:\n"
        "    - headers: [{name: color, value: red}]\n"
        "    - headers: [{name: color, value: yellow}]\n" + backend(V2)
    )
    check(
        routes_from(route("header-matching", rules)),
        [
            ("GET", "/", {"Version": "one"}, V1),
            ("GET", "/", {"Version": "two"}, V2),
            ("GET", "/", {"Version": "two", "Color": "orange"}, V1),
            # Both single-header rules tie on counts; rule order gives it to "version: two".
            ("GET", "/", {"Version": "two", "Color": "blue"}, V2),
            ("GET", "/", {"Color": "orange"}, None),
            ("GET", "/", {"Some-Other-Header": "one"}, None),
            ("GET", "/", {"Color": "blue"}, V1),
            ("GET", "/", {"Color": "green"}, V1),
            ("GET", "/", {"Color": "red"}, V2),
            ("GET", "/", {"Color": "yellow"}, V2),
            ("GET", "/", {"Color": "purple"}, None),
        ],
    )


def test_httproute_query_param_matching() -> None:
    """HTTPRouteQueryParamMatching, including its combinations and precedence cases."""
    rules = (
        "  - matches: [{queryParams: [{name: animal, value: whale}]}]\n"
        + backend(V1)
        + "  - matches: [{queryParams: [{name: animal, value: dolphin}]}]\n"
        + backend(V2)
        + "  - matches:\n"
        "    - queryParams: [{name: animal, value: dolphin}, {name: color, value: blue}]\n"
        "    - queryParams: [{name: ANIMAL, value: Whale}]\n" + backend(V3) + "  - matches:\n"
        "    - path: {type: PathPrefix, value: /path1}\n"
        "      queryParams: [{name: animal, value: whale}]\n" + backend(V1) + "  - matches:\n"
        "    - headers: [{name: version, value: one}]\n"
        "      queryParams: [{name: animal, value: whale}]\n" + backend(V2) + "  - matches:\n"
        "    - path: {type: PathPrefix, value: /path2}\n"
        "      headers: [{name: version, value: two}]\n"
        "      queryParams: [{name: animal, value: whale}]\n" + backend(V3) + "  - matches:\n"
        "    - path: {type: PathPrefix, value: /path3}\n"
        "      queryParams: [{name: animal, value: shark}]\n"
        "    - path: {type: PathPrefix, value: /path4}\n"
        "      headers: [{name: version, value: three}]\n"
        "      queryParams: [{name: animal, value: kraken}]\n"
        + backend(V1)
        + "  - matches: [{path: {type: PathPrefix, value: /path5}}]\n"
        + backend(V1)
        + "  - matches: [{queryParams: [{name: animal, value: hydra}]}]\n"
        + backend(V2)
        + "  - matches: [{headers: [{name: version, value: four}]}]\n"
        + backend(V3)
    )
    check(
        routes_from(route("query-param-matching", rules)),
        [
            ("GET", "/?animal=whale", {}, V1),
            ("GET", "/?animal=dolphin", {}, V2),
            ("GET", "/?animal=dolphin&color=blue", {}, V3),
            ("GET", "/?ANIMAL=Whale", {}, V3),
            ("GET", "/?animal=whale&otherparam=irrelevant", {}, V1),
            ("GET", "/?animal=dolphin&color=yellow", {}, V2),
            ("GET", "/?color=blue", {}, None),
            ("GET", "/?animal=dog", {}, None),
            ("GET", "/?animal=whaledolphin", {}, None),
            ("GET", "/", {}, None),
            ("GET", "/path1?animal=whale", {}, V1),
            ("GET", "/?animal=whale", {"version": "one"}, V2),
            ("GET", "/path2?animal=whale", {"version": "two"}, V3),
            ("GET", "/path3?animal=shark", {}, V1),
            ("GET", "/path4?animal=kraken", {"version": "three"}, V1),
            ("GET", "/?animal=shark", {}, None),
            ("GET", "/path4?animal=kraken", {}, None),
            # A longer prefix beats a query-param match; a header match beats it too.
            ("GET", "/path5?animal=hydra", {}, V1),
            ("GET", "/?animal=hydra", {"version": "four"}, V3),
        ],
    )


def test_httproute_method_matching() -> None:
    """HTTPRouteMethodMatching, including its combinations and precedence cases."""
    rules = (
        "  - matches: [{method: POST}]\n"
        + backend(V1)
        + "  - matches: [{method: GET}]\n"
        + backend(V2)
        + "  - matches: [{path: {type: PathPrefix, value: /path1}, method: GET}]\n"
        + backend(V1)
        + "  - matches: [{headers: [{name: version, value: one}], method: PUT}]\n"
        + backend(V2)
        + "  - matches:\n"
        "    - path: {type: PathPrefix, value: /path2}\n"
        "      headers: [{name: version, value: two}]\n"
        "      method: POST\n" + backend(V3) + "  - matches:\n"
        "    - {path: {type: PathPrefix, value: /path3}, method: PATCH}\n"
        "    - path: {type: PathPrefix, value: /path4}\n"
        "      headers: [{name: version, value: three}]\n"
        "      method: DELETE\n"
        + backend(V1)
        + "  - matches: [{path: {type: PathPrefix, value: /path5}}]\n"
        + backend(V1)
        + "  - matches: [{method: PATCH}]\n"
        + backend(V2)
        + "  - matches: [{headers: [{name: version, value: four}]}]\n"
        + backend(V3)
    )
    check(
        routes_from(route("method-matching", rules)),
        [
            ("POST", "/", {}, V1),
            ("GET", "/", {}, V2),
            ("HEAD", "/", {}, None),
            ("GET", "/path1", {}, V1),
            ("PUT", "/", {"version": "one"}, V2),
            ("POST", "/path2", {"version": "two"}, V3),
            ("PATCH", "/path3", {}, V1),
            ("DELETE", "/path4", {"version": "three"}, V1),
            ("PUT", "/", {}, None),
            ("DELETE", "/path4", {}, None),
            # A longer prefix beats a method match; a method match beats a header match.
            ("PATCH", "/path5", {}, V1),
            ("PATCH", "/", {"version": "four"}, V2),
        ],
    )


def test_httproute_matching_across_routes() -> None:
    """HTTPRouteMatchingAcrossRoutes: two routes sharing example.com."""
    manifest = route(
        "matching-part1",
        "  - matches:\n"
        "    - path: {type: PathPrefix, value: /}\n"
        "    - headers: [{name: version, value: one}]\n" + backend(V1),
        hostnames="[example.com, example.net]",
    ) + route(
        "matching-part2",
        "  - matches:\n"
        "    - path: {type: PathPrefix, value: /v2}\n"
        "    - headers: [{name: version, value: two}]\n" + backend(V2),
        hostnames="[example.com]",
    )
    check(
        routes_from(manifest),
        [
            ("GET", "example.com/", {}, V1),
            ("GET", "example.com/example", {}, V1),
            ("GET", "example.net/example", {}, V1),
            ("GET", "example.com/example", {"Version": "one"}, V1),
            ("GET", "example.com/v2", {}, V2),
            ("GET", "example.net/v2", {}, V1),
            ("GET", "example.com/v2/example", {}, V2),
            ("GET", "example.com/", {"Version": "two"}, V2),
        ],
    )


def test_httproute_path_match_order() -> None:
    """HTTPRoutePathMatchOrder: Exact first, then the longest prefix."""
    rules = (
        "  - matches: [{path: {type: Exact, value: /match}}]\n"
        + backend(V1)
        + "  - matches: [{path: {type: Exact, value: /match/exact}}]\n"
        + backend(V2)
        + "  - matches: [{path: {type: Exact, value: /match/exact/one}}]\n"
        + backend(V3)
        + "  - matches: [{path: {type: PathPrefix, value: /match/}}]\n"
        + backend(V3)
        + "  - matches: [{path: {type: PathPrefix, value: /match/prefix/}}]\n"
        + backend(V1)
        + "  - matches: [{path: {type: PathPrefix, value: /match/prefix/one}}]\n"
        + backend(V2)
    )
    check(
        routes_from(route("path-matching-order", rules)),
        [
            ("GET", "/match/exact/one", {}, V3),
            ("GET", "/match/exact", {}, V2),
            ("GET", "/match", {}, V1),
            ("GET", "/match/prefix/one/any", {}, V2),
            ("GET", "/match/prefix/any", {}, V1),
            ("GET", "/match/any", {}, V3),
        ],
    )


def test_httproute_hostname_intersection() -> None:
    """HTTPRouteHostnameIntersection, with each route's hostnames narrowed to the listeners
    very.specific.com, *.wildcard.io and *.anotherwildcard.io."""
    manifest = (
        route(
            "specific-host",
            "  - matches: [{path: {value: /s1}}]\n" + backend(V1),
            "[very.specific.com]",
        )
        + route(
            "specific-host-under-wildcard-listener",
            "  - matches: [{path: {value: /s2}}]\n" + backend(V2),
            "[foo.wildcard.io, bar.wildcard.io, foo.bar.wildcard.io]",
        )
        # "*.specific.com" narrowed by the listener to very.specific.com.
        + route(
            "wildcard-host-specific-listener",
            "  - matches: [{path: {value: /s3}}]\n" + backend(V3),
            "[very.specific.com]",
        )
        + route(
            "wildcard-host-wildcard-listener",
            "  - matches: [{path: {value: /s4}}]\n" + backend(V1),
            "['*.anotherwildcard.io']",
        )
    )
    check(
        routes_from(manifest),
        [
            ("GET", "very.specific.com/s1", {}, V1),
            ("GET", "non.matching.com/s1", {}, None),
            ("GET", "foo.nonmatchingwildcard.io/s1", {}, None),
            ("GET", "foo.wildcard.io/s1", {}, None),
            ("GET", "very.specific.com/non-matching-prefix", {}, None),
            ("GET", "foo.wildcard.io/s2", {}, V2),
            ("GET", "bar.wildcard.io/s2", {}, V2),
            ("GET", "foo.bar.wildcard.io/s2", {}, V2),
            ("GET", "non.matching.com/s2", {}, None),
            ("GET", "wildcard.io/s2", {}, None),
            ("GET", "very.specific.com/s2", {}, None),
            ("GET", "foo.wildcard.io/non-matching-prefix", {}, None),
            ("GET", "very.specific.com/s3", {}, V3),
            ("GET", "non.matching.com/s3", {}, None),
            ("GET", "foo.specific.com/s3", {}, None),
            ("GET", "foo.wildcard.io/s3", {}, None),
            ("GET", "foo.anotherwildcard.io/s4", {}, V1),
            ("GET", "bar.anotherwildcard.io/s4", {}, V1),
            ("GET", "foo.bar.anotherwildcard.io/s4", {}, V1),
            ("GET", "anotherwildcard.io/s4", {}, None),
            ("GET", "foo.wildcard.io/s4", {}, None),
            ("GET", "very.specific.com/s4", {}, None),
            ("GET", "foo.anotherwildcard.io/non-matching-prefix", {}, None),
        ],
    )


def test_httproute_listener_hostname_matching() -> None:
    """HTTPRouteListenerHostnameMatching: routes without hostnames take their listener's, so
    an exact hostname must beat an overlapping wildcard one."""
    manifest = (
        route("backend-v1", catch_all(V1), "[bar.com]")
        + route("backend-v2", catch_all(V2), "[foo.bar.com]")
        + route("backend-v3", catch_all(V3), "['*.bar.com', '*.foo.com']")
    )
    check(
        routes_from(manifest),
        [
            ("GET", "bar.com/", {}, V1),
            ("GET", "foo.bar.com/", {}, V2),
            ("GET", "baz.bar.com/", {}, V3),
            ("GET", "boo.bar.com/", {}, V3),
            ("GET", "multiple.prefixes.bar.com/", {}, V3),
            ("GET", "multiple.prefixes.foo.com/", {}, V3),
            ("GET", "foo.com/", {}, None),
            ("GET", "no.matching.host/", {}, None),
        ],
    )


def test_matching_ignores_the_port_in_the_host() -> None:
    """HTTPRouteHostnameIntersection also sends Host with a port; the port must not matter."""
    routes = routes_from(route("r", catch_all(V1), "[very.specific.com]"))
    assert select(routes, Request("GET", "very.specific.com:8080", "/")) is not None
    assert select(routes, Request("GET", "Very.Specific.COM", "/")) is not None
