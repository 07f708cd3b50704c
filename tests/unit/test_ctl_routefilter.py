"""``wakeway route-filter``: the snippet printed from an HTTPScaledObject's status, and the
errors that name what is missing."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from wakeway.ctl.errors import EXIT_FAILED, EXIT_USAGE, CommandError
from wakeway.ctl.routefilter import render, route_filters
from wakeway.operator.routefilter import identity_filter

pytestmark = pytest.mark.unit

ID = "demo/hello;0123456789abcdef0123456789abcdef"


def httpso(*routes: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "hello", "namespace": "demo"}, "status": {"routes": list(routes)}}


BOUND = {"namespace": "demo", "name": "hello", "ruleName": "app", "identity": ID, "bound": True}
REFUSED = {
    "namespace": "other",
    "name": "shop",
    "bound": False,
    "reason": "RefNotPermitted",
    "message": "no ReferenceGrant in other",
}


def test_the_yaml_printed_is_the_filter_to_paste() -> None:
    found = route_filters(httpso(BOUND, REFUSED), None)
    assert found == [{"route": "demo/hello", "rule": "app", "filter": identity_filter(ID)}]
    text = render(found, "yaml")
    assert "# HTTPRoute demo/hello, rule 'app'" in text
    assert yaml.safe_load(text) == [identity_filter(ID)]
    assert yaml.safe_load(render(found, "json")) == found


@pytest.mark.parametrize(
    ("obj", "route", "code", "message"),
    [
        pytest.param(httpso(), None, EXIT_FAILED, "no routes in its status yet", id="no status"),
        pytest.param(
            httpso(REFUSED),
            None,
            EXIT_FAILED,
            "HTTPRoute other/shop: no identity published (no ReferenceGrant in other)",
            id="refused",
        ),
        pytest.param(
            httpso(BOUND), "nope", EXIT_USAGE, "binds no HTTPRoute demo/nope", id="unknown route"
        ),
    ],
)
def test_errors_name_the_object_and_the_route(
    obj: dict[str, Any], route: str | None, code: int, message: str
) -> None:
    with pytest.raises(CommandError, match=re.escape(message)) as caught:
        route_filters(obj, route)
    assert caught.value.code == code


def test_one_route_by_namespace_and_name() -> None:
    found = route_filters(httpso(BOUND, REFUSED | {"identity": "x"}), "other/shop")
    assert [f["route"] for f in found] == ["other/shop"]
