"""The identity filter the operator writes into opted-in HTTPRoutes (wakeway.operator.routefilter):
table tests of the plan, each applied with a JSON Patch interpreter to the route as stored, so
what is checked is the route the API server would hold afterwards."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.routing_fixtures import INTERCEPTOR, reference_grant, route, so
from wakeway.model.httproute import parse_httproute
from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.service import ReferenceGrant
from wakeway.operator.routefilter import ANNOTATION, PatchOp, identity_filter, plan_route_filter
from wakeway.routing import RouteGrants, RoutingTable
from wakeway.routing.identity import IDENTITY_HEADER

pytestmark = pytest.mark.unit

ID = "demo/hello;0123456789abcdef0123456789abcdef"
BACKEND = [{"name": "wakeway-interceptor", "namespace": "wakeway", "port": 8080}]
STAMP = {"name": IDENTITY_HEADER, "value": ID}
OTHER = {"name": "x-tenant", "value": "blue"}


def doc(*rules: dict[str, Any], opted_in: bool | str = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "hello", "namespace": "demo"}
    if opted_in is not False:
        meta["annotations"] = {ANNOTATION: "true" if opted_in is True else opted_in}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": meta,
        "spec": {
            "parentRefs": [{"name": "web"}],
            "rules": [{"backendRefs": BACKEND, **r} for r in rules],
        },
    }


def rhm(**fields: Any) -> dict[str, Any]:
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": fields}


def apply_patch(obj: dict[str, Any], ops: tuple[PatchOp, ...]) -> dict[str, Any]:
    """RFC 6902 add/replace/remove, as the API server applies them (in order)."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, last = op.path.lstrip("/").split("/")
        target: Any = out
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            if op.op == "add":
                target.insert(len(target) if last == "-" else int(last), op.value)
            elif op.op == "replace":
                target[int(last)] = op.value
            else:
                del target[int(last)]
        elif op.op == "remove":
            del target[last]
        else:
            assert op.op == "add" or last in target, f"replace of a missing {op.path}"
            target[last] = op.value
    return out


def plan(obj: dict[str, Any], bound: set[int], *, ours: bool = False) -> tuple[PatchOp, ...]:
    return plan_route_filter(parse_httproute(obj), frozenset(bound), ID, ours=ours)


# (rules before, bound rule indices, rules after): what stamping does, rule by rule.
STAMPING = [
    pytest.param([{}], {0}, [{"filters": [identity_filter(ID)]}], id="no filters: one added"),
    pytest.param(
        [{"filters": []}], {0}, [{"filters": [identity_filter(ID)]}], id="empty filters list"
    ),
    pytest.param(
        [{"filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "a.example"}}]}],
        {0},
        [
            {
                "filters": [
                    {"type": "URLRewrite", "urlRewrite": {"hostname": "a.example"}},
                    identity_filter(ID),
                ]
            }
        ],
        id="after the rule's other filters",
    ),
    pytest.param(
        [{"filters": [rhm(set=[OTHER], remove=["x-debug"])]}],
        {0},
        [{"filters": [rhm(set=[OTHER, STAMP], remove=["x-debug"])]}],
        id="into the rule's own RequestHeaderModifier (one per rule)",
    ),
    pytest.param(
        [{"filters": [rhm(add=[OTHER])]}],
        {0},
        [{"filters": [rhm(add=[OTHER], set=[STAMP])]}],
        id="a set list added to a modifier that only adds",
    ),
    pytest.param(
        [{"filters": [rhm(set=[{"name": "X-Wakeway-Route", "value": "demo/hello;paste-it"}])]}],
        {0},
        [{"filters": [rhm(set=[{"name": "X-Wakeway-Route", "value": ID}])]}],
        id="a placeholder value replaced, the name as the owner spelt it",
    ),
    pytest.param(
        [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        {0, 2},
        [
            {"name": "a", "filters": [identity_filter(ID)]},
            {"name": "b"},
            {"name": "c", "filters": [identity_filter(ID)]},
        ],
        id="bound rules only",
    ),
    pytest.param(
        [{"filters": [rhm(remove=[IDENTITY_HEADER])]}],
        {0},
        [{"filters": [rhm(remove=[IDENTITY_HEADER])]}],
        id="the owner removes the header itself: left alone",
    ),
]


@pytest.mark.parametrize(("rules", "bound", "after"), STAMPING)
def test_an_opted_in_route_gets_its_identity_in_each_bound_rule(
    rules: list[dict[str, Any]], bound: set[int], after: list[dict[str, Any]]
) -> None:
    before = doc(*rules)
    stamped = apply_patch(before, plan(before, bound))
    assert stamped == doc(*after)
    assert plan(stamped, bound) == ()  # steady state: no writes
    assert plan(stamped, bound, ours=True) == ()


def without_empty_filters(obj: dict[str, Any]) -> dict[str, Any]:
    """An empty filters list and none are the same rule."""
    out = copy.deepcopy(obj)
    for rule in out["spec"]["rules"]:
        if rule.get("filters") == []:
            del rule["filters"]
    return out


@pytest.mark.parametrize(("rules", "bound", "after"), STAMPING)
def test_taking_it_out_again_restores_the_owners_rules(
    rules: list[dict[str, Any]], bound: set[int], after: list[dict[str, Any]]
) -> None:
    before = doc(*rules)
    stamped = apply_patch(before, plan(before, bound))
    if "paste-it" in str(rules):  # the placeholder was replaced: what goes is the operator's
        before = doc({})
    # The binding goes (no rule bound any more), or the annotation is removed.
    unbound = apply_patch(stamped, plan(stamped, set(), ours=True))
    assert without_empty_filters(unbound) == without_empty_filters(before)
    opted_out = doc(*after, opted_in=False)
    removed = apply_patch(opted_out, plan(opted_out, bound, ours=True))
    assert without_empty_filters(removed) == without_empty_filters(doc(*rules, opted_in=False)) or (
        "paste-it" in str(rules) and without_empty_filters(removed) == doc({}, opted_in=False)
    )


@pytest.mark.parametrize(
    ("obj", "bound", "ours"),
    [
        pytest.param(doc({}, opted_in=False), {0}, True, id="not opted in"),
        pytest.param(doc({}, opted_in="yes"), {0}, True, id="annotation not 'true'"),
        pytest.param(doc({}), set(), True, id="no bound rule (refused, gone, never named)"),
        pytest.param(
            doc({"filters": [identity_filter(ID)]}, opted_in=False),
            {0},
            False,
            id="a hand-written stamp of a route not opted in, rules not the operator's",
        ),
        pytest.param(
            doc({"filters": [identity_filter(ID)]}),
            set(),
            False,
            id="binding gone, but someone else wrote the rules since",
        ),
    ],
)
def test_nothing_to_write(obj: dict[str, Any], bound: set[int], ours: bool) -> None:
    assert plan(obj, bound, ours=ours) == ()


def test_without_an_identity_key_nothing_is_written_and_the_operators_stamp_is_removed() -> None:
    route = parse_httproute(doc({"filters": [identity_filter(ID)]}, {}))
    assert plan_route_filter(route, frozenset({0, 1}), None, ours=False) == ()
    ops = plan_route_filter(route, frozenset({0, 1}), None, ours=True)
    assert ops == (PatchOp("remove", "/spec/rules/0/filters"),)


def test_only_an_unbound_rules_stamp_goes_while_the_bound_ones_stay() -> None:
    obj = doc({"filters": [identity_filter(ID)]}, {"filters": [rhm(set=[OTHER, STAMP])]})
    ops = plan(obj, {0}, ours=True)
    assert ops == (PatchOp("remove", "/spec/rules/1/filters/0/requestHeaderModifier/set/1"),)
    assert apply_patch(obj, ops) == doc(
        {"filters": [identity_filter(ID)]}, {"filters": [rhm(set=[OTHER])]}
    )


def test_patch_ops_in_json() -> None:
    assert PatchOp("remove", "/a").to_json() == {"op": "remove", "path": "/a"}
    assert PatchOp("add", "/a", [1]).to_json() == {"op": "add", "path": "/a", "value": [1]}


@pytest.mark.parametrize(
    ("targets", "grants", "bound"),
    [
        pytest.param([so("web", ns="shop", routes=[{"name": "r"}])], [], {0, 1}, id="every rule"),
        pytest.param(
            [so("web", ns="shop", routes=[{"name": "r", "ruleName": "b"}])],
            [],
            {1},
            id="one rule by name",
        ),
        pytest.param(
            [so("web", ns="thief", routes=[{"name": "r", "namespace": "shop"}])],
            [],
            set(),
            id="refused: another namespace without the owner's grant",
        ),
        pytest.param(
            [so("web", ns="thief", routes=[{"name": "r", "namespace": "shop"}])],
            [reference_grant("shop", from_ns="thief")],
            {0, 1},
            id="granted",
        ),
        pytest.param([], [], set(), id="no object binds it"),
    ],
)
def test_the_rules_the_operator_stamps_are_the_bound_ones(
    targets: list[HTTPScaledObject], grants: list[ReferenceGrant], bound: set[int]
) -> None:
    r = route("r", [{"name": "a"}, {"name": "b"}], ns="shop")
    table = RoutingTable(targets, [r], INTERCEPTOR, RouteGrants.of(grants))
    assert table.bound_rules("shop/r") == bound
    assert table.bound_rules("shop/other") == frozenset()
