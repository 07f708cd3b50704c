"""The HTTPRoute parser: schema defaults, and errors that name the offending field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from wakeway.model.errors import ModelError
from wakeway.model.httproute import (
    API_GROUP,
    BackendRef,
    HeaderModifier,
    ParentRef,
    PathMatch,
    PathModifier,
    RouteMatch,
    parse_httproute,
)
from wakeway.model.meta import parse_meta

pytestmark = pytest.mark.unit


def doc(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web", **metadata},
        "spec": {} if spec is None else spec,
    }


def with_match(match: dict[str, Any]) -> dict[str, Any]:
    return doc({"rules": [{"matches": [match]}]})


def test_defaults() -> None:
    route = parse_httproute(
        doc(
            {
                "parentRefs": [{"name": "gw"}],
                "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}],
            }
        )
    )
    assert route.key == "default/web"
    assert route.creation_timestamp == 0.0
    assert route.generation == 0
    assert route.hostnames == ()
    assert route.parent_refs == (ParentRef(API_GROUP, "Gateway", None, "gw", None, None),)
    (rule,) = route.rules
    assert rule.matches == (RouteMatch(path=PathMatch("PathPrefix", "/")),)
    assert rule.backend_refs == (BackendRef("", "Service", "svc", None, 80, 1),)


def test_no_rules_means_one_rule_matching_everything() -> None:
    (rule,) = parse_httproute(doc()).rules
    assert rule.matches == (RouteMatch(),)


def test_match_defaults() -> None:
    route = parse_httproute(
        with_match(
            {
                "path": {"value": "/a"},
                "headers": [{"name": "x", "value": "1"}],
                "queryParams": [{"name": "q", "value": "2"}],
            }
        )
    )
    (m,) = route.rules[0].matches
    assert m.path == PathMatch("PathPrefix", "/a")
    assert m.headers[0].type == "Exact"
    assert m.query_params[0].type == "Exact"
    assert m.method is None
    assert (
        parse_httproute(with_match({"path": {"type": "Exact"}})).rules[0].matches[0].path.value
        == "/"
    )


def test_metadata() -> None:
    route = parse_httproute(
        doc(
            namespace="shop",
            creationTimestamp="2024-05-01T12:00:00Z",
            generation=3,
            annotations={"a": "b"},
        ),
        default_namespace="ignored",
    )
    assert route.key == "shop/web"
    assert route.creation_timestamp == 1714564800.0
    assert route.generation == 3
    assert route.annotations["a"] == "b"
    assert parse_httproute(doc(), default_namespace="ns").namespace == "ns"


def test_route_is_hashable_and_comparable() -> None:
    a = parse_httproute(doc({"hostnames": ["a.example.com"]}))
    b = parse_httproute(copy.deepcopy(doc({"hostnames": ["a.example.com"]})))
    assert a == b
    assert hash(a) == hash(b)


def test_filters_are_told_apart() -> None:
    rule = {
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {
                    "set": [{"name": "my-header", "value": "bar"}],
                    "add": [{"name": "other", "value": "bar,baz"}],
                    "remove": ["my-header1", "my-header3"],
                },
            },
            {
                "type": "URLRewrite",
                "urlRewrite": {
                    "hostname": "x.example.com",
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/xyz"},
                },
            },
            {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "m", "port": 80}}},
        ],
        "matches": [{"path": {"type": "PathPrefix", "value": "/foo"}}],
        "backendRefs": [{"name": "svc", "port": 80, "weight": 0}],
    }
    (parsed,) = parse_httproute(doc({"rules": [rule]})).rules
    modifier, rewrite, mirror = parsed.filters
    assert modifier.request_header_modifier == HeaderModifier(
        set=(("my-header", "bar"),),
        add=(("other", "bar,baz"),),
        remove=("my-header1", "my-header3"),
    )
    assert rewrite.url_rewrite is not None
    assert rewrite.url_rewrite.path == PathModifier("ReplacePrefixMatch", "/xyz")
    assert mirror.type == "RequestMirror"
    assert parsed.backend_refs[0].weight == 0


def test_valid_names_from_the_spec_are_accepted() -> None:
    for section in ("example", "foo-example", "example.com", "foo.example.com"):
        parse_httproute(doc({"parentRefs": [{"name": "gw", "sectionName": section}]}))
    for header in ("Authorization", "Set-Cookie"):
        parse_httproute(with_match({"headers": [{"name": header, "value": "x"}]}))
    for group, kind in (
        ("", "Service"),
        ("gateway.networking.k8s.io", "HTTPRoute"),
        ("foo.example.com", "Gateway"),
    ):
        parse_httproute(doc({"parentRefs": [{"name": "gw", "group": group, "kind": kind}]}))


def rules_with(n_rules: int, n_matches: int) -> dict[str, Any]:
    return doc(
        {"rules": [{"matches": [{"path": {"value": f"/{i}"}}] * n_matches} for i in range(n_rules)]}
    )


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no name", {"metadata": {}, "spec": {}}, "metadata.name"),
    ("no spec", {"metadata": {"name": "x"}}, "spec"),
    ("bad timestamp", doc(creationTimestamp="yesterday"), "metadata.creationTimestamp"),
    ("upper-case hostname", doc({"hostnames": ["Foo.example.com"]}), "spec.hostnames[0]"),
    ("wildcard not leftmost", doc({"hostnames": ["foo.*.example.com"]}), "spec.hostnames[0]"),
    ("bare wildcard", doc({"hostnames": ["*"]}), "spec.hostnames[0]"),
    ("ip hostname", doc({"hostnames": ["ok.example.com", "10.0.0.1"]}), "spec.hostnames[1]"),
    ("hostname with port", doc({"hostnames": ["foo.example.com:80"]}), "spec.hostnames[0]"),
    (
        "17 hostnames",
        doc({"hostnames": [f"h{i}.example.com" for i in range(17)]}),
        "spec.hostnames",
    ),
    ("17 rules", rules_with(17, 1), "spec.rules"),
    ("65 matches in a rule", rules_with(1, 65), "spec.rules[0].matches"),
    ("129 matches in a route", rules_with(3, 43), "spec.rules"),
    (
        "parentRef without name",
        doc({"parentRefs": [{"kind": "Gateway"}]}),
        "spec.parentRefs[0].name",
    ),
    (
        "parentRef port 0",
        doc({"parentRefs": [{"name": "gw", "port": 0}]}),
        "spec.parentRefs[0].port",
    ),
    (
        "namespace with dot",
        doc({"parentRefs": [{"name": "gw", "namespace": "example.com"}]}),
        "spec.parentRefs[0].namespace",
    ),
    (
        "section name with slash",
        doc({"parentRefs": [{"name": "gw", "sectionName": "example.com/bar"}]}),
        "spec.parentRefs[0].sectionName",
    ),
    (
        "group with slash",
        doc({"parentRefs": [{"name": "gw", "group": "example.com/bar"}]}),
        "spec.parentRefs[0].group",
    ),
    (
        "kind with slash",
        doc({"parentRefs": [{"name": "gw", "kind": "invalid/kind"}]}),
        "spec.parentRefs[0].kind",
    ),
    ("duplicate rule names", doc({"rules": [{"name": "a"}, {"name": "a"}]}), "spec.rules[1].name"),
    (
        "unknown path type",
        with_match({"path": {"type": "Prefix", "value": "/"}}),
        "spec.rules[0].matches[0].path.type",
    ),
    (
        "relative path",
        with_match({"path": {"type": "PathPrefix", "value": "foo"}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "double slash",
        with_match({"path": {"type": "Exact", "value": "/foo///"}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "dot segment",
        with_match({"path": {"value": "/a/./b"}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "dot-dot segment",
        with_match({"path": {"value": "/a/../b"}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "ends with /..",
        with_match({"path": {"value": "/a/.."}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "ends with /.",
        with_match({"path": {"type": "Exact", "value": "/a/."}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "encoded slash",
        with_match({"path": {"value": "/a%2Fb"}}),
        "spec.rules[0].matches[0].path.value",
    ),
    ("fragment", with_match({"path": {"value": "/a#b"}}), "spec.rules[0].matches[0].path.value"),
    (
        "space in path",
        with_match({"path": {"value": "/a b"}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "long path",
        with_match({"path": {"value": "/" + "a" * 1024}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "bad path regex",
        with_match({"path": {"type": "RegularExpression", "value": "/(a"}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "backreference",
        with_match({"path": {"type": "RegularExpression", "value": r"/(a)\1"}}),
        "spec.rules[0].matches[0].path.value",
    ),
    (
        "lookahead",
        with_match({"headers": [{"type": "RegularExpression", "name": "x", "value": "(?=a)"}]}),
        "spec.rules[0].matches[0].headers[0].value",
    ),
    (
        "pseudo header",
        with_match({"headers": [{"name": ":method", "value": "GET"}]}),
        "spec.rules[0].matches[0].headers[0].name",
    ),
    (
        "slash in header name",
        with_match({"headers": [{"name": "/invalid", "value": "x"}]}),
        "spec.rules[0].matches[0].headers[0].name",
    ),
    (
        "empty header value",
        with_match({"headers": [{"name": "x", "value": ""}]}),
        "spec.rules[0].matches[0].headers[0].value",
    ),
    (
        "duplicate header",
        with_match({"headers": [{"name": "x", "value": "1"}, {"name": "x", "value": "2"}]}),
        "spec.rules[0].matches[0].headers[1].name",
    ),
    (
        "unknown header type",
        with_match({"headers": [{"type": "Prefix", "name": "x", "value": "1"}]}),
        "spec.rules[0].matches[0].headers[0].type",
    ),
    (
        "17 headers",
        with_match({"headers": [{"name": f"h{i}", "value": "1"} for i in range(17)]}),
        "spec.rules[0].matches[0].headers",
    ),
    (
        "duplicate query param",
        with_match({"queryParams": [{"name": "q", "value": "1"}, {"name": "q", "value": "2"}]}),
        "spec.rules[0].matches[0].queryParams[1].name",
    ),
    (
        "bad query regex",
        with_match({"queryParams": [{"type": "RegularExpression", "name": "q", "value": "[a"}]}),
        "spec.rules[0].matches[0].queryParams[0].value",
    ),
    ("lower-case method", with_match({"method": "get"}), "spec.rules[0].matches[0].method"),
    ("unknown method", with_match({"method": "PURGE"}), "spec.rules[0].matches[0].method"),
    (
        "unknown filter",
        doc({"rules": [{"filters": [{"type": "Magic"}]}]}),
        "spec.rules[0].filters[0].type",
    ),
    (
        "filter without its config",
        doc({"rules": [{"filters": [{"type": "URLRewrite"}]}]}),
        "spec.rules[0].filters[0].urlRewrite",
    ),
    (
        "filter with another's config",
        doc(
            {
                "rules": [
                    {"filters": [{"type": "URLRewrite", "urlRewrite": {}, "requestRedirect": {}}]}
                ]
            }
        ),
        "spec.rules[0].filters[0].requestRedirect",
    ),
    (
        "repeated header modifier",
        doc(
            {
                "rules": [
                    {
                        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {}}]
                        * 2
                    }
                ]
            }
        ),
        "spec.rules[0].filters",
    ),
    (
        "redirect and rewrite",
        doc(
            {
                "rules": [
                    {
                        "filters": [
                            {"type": "URLRewrite", "urlRewrite": {}},
                            {"type": "RequestRedirect", "requestRedirect": {}},
                        ]
                    }
                ]
            }
        ),
        "spec.rules[0].filters",
    ),
    (
        "redirect with backends",
        doc(
            {
                "rules": [
                    {
                        "filters": [{"type": "RequestRedirect", "requestRedirect": {}}],
                        "backendRefs": [{"name": "s", "port": 80}],
                    }
                ]
            }
        ),
        "spec.rules[0].filters",
    ),
    (
        "bad redirect status",
        doc(
            {
                "rules": [
                    {
                        "filters": [
                            {"type": "RequestRedirect", "requestRedirect": {"statusCode": 300}}
                        ]
                    }
                ]
            }
        ),
        "spec.rules[0].filters[0].requestRedirect.statusCode",
    ),
    (
        "replacePrefixMatch without prefix match",
        doc(
            {
                "rules": [
                    {
                        "matches": [{"path": {"type": "Exact", "value": "/a"}}],
                        "filters": [
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "path": {
                                        "type": "ReplacePrefixMatch",
                                        "replacePrefixMatch": "/b",
                                    }
                                },
                            }
                        ],
                    }
                ]
            }
        ),
        "spec.rules[0].matches",
    ),
    (
        "path modifier missing its value",
        doc(
            {
                "rules": [
                    {
                        "filters": [
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {"path": {"type": "ReplaceFullPath"}},
                            }
                        ]
                    }
                ]
            }
        ),
        "spec.rules[0].filters[0].urlRewrite.path.replaceFullPath",
    ),
    (
        "two actions on one header",
        doc(
            {
                "rules": [
                    {
                        "filters": [
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {
                                    "set": [{"name": "A", "value": "1"}],
                                    "remove": ["a"],
                                },
                            }
                        ]
                    }
                ]
            }
        ),
        "spec.rules[0].filters[0].requestHeaderModifier",
    ),
    (
        "service backend without port",
        doc({"rules": [{"backendRefs": [{"name": "svc"}]}]}),
        "spec.rules[0].backendRefs[0].port",
    ),
    (
        "negative weight",
        doc({"rules": [{"backendRefs": [{"name": "svc", "port": 80, "weight": -1}]}]}),
        "spec.rules[0].backendRefs[0].weight",
    ),
    (
        "huge weight",
        doc({"rules": [{"backendRefs": [{"name": "svc", "port": 80, "weight": 1000001}]}]}),
        "spec.rules[0].backendRefs[0].weight",
    ),
    (
        "backend port string",
        doc({"rules": [{"backendRefs": [{"name": "svc", "port": "80"}]}]}),
        "spec.rules[0].backendRefs[0].port",
    ),
    ("rules not a list", doc({"rules": {"matches": []}}), "spec.rules"),
]


@pytest.mark.parametrize(
    ("document", "field"), [(d, f) for _, d, f in BAD], ids=[n for n, _, _ in BAD]
)
def test_errors_name_the_field(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_httproute(document)
    assert caught.value.path == field, str(caught.value)
    assert str(caught.value).startswith(f"{field}: ")


def test_non_service_backend_may_omit_port() -> None:
    route = parse_httproute(
        doc({"rules": [{"backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]}]})
    )
    assert route.rules[0].backend_refs[0].port is None


@pytest.mark.parametrize(
    ("stamp", "epoch"),
    [
        ("2024-05-01T12:00:00Z", 1714564800.0),
        ("2024-05-01T14:00:00+02:00", 1714564800.0),
        ("2024-05-01T12:00:00.5Z", 1714564800.5),
    ],
)
def test_one_timestamp_rule_for_every_kind(stamp: str, epoch: float) -> None:
    """HTTPRoutes and every other object read their metadata with the same parser."""
    route = parse_httproute(doc(creationTimestamp=stamp))
    meta = parse_meta({"metadata": {"name": "x", "creationTimestamp": stamp}}, "default")
    assert route.creation_timestamp == meta.creation_timestamp == epoch
    assert route.meta.key == "default/web"


@pytest.mark.parametrize("stamp", ["2024-05-01T12:00:00", "yesterday", "2024-13-01T00:00:00Z"])
def test_a_timestamp_without_zone_or_unreadable_is_refused_alike(stamp: str) -> None:
    with pytest.raises(ModelError, match=r"metadata\.creationTimestamp"):
        parse_httproute(doc(creationTimestamp=stamp))
    with pytest.raises(ModelError, match=r"metadata\.creationTimestamp"):
        parse_meta({"metadata": {"name": "x", "creationTimestamp": stamp}}, "default")
