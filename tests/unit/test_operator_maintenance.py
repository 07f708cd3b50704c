"""plan() for wake exclusions and maintenance: the Maintenance condition, and a user agent that
is not RE2 makes the object Ready=False naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from wakeway.model import ModelError
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.model.meta import ObjectMeta
from wakeway.model.service import Service, ServicePort
from wakeway.operator.plan import MAINTENANCE, InvalidSpec, Observed, Plan, plan
from wakeway.operator.scaling import Activity

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0
SERVICES = {"web": Service(ObjectMeta("apps", "web"), "ClusterIP", (ServicePort("http", 80),))}


def doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "web", "namespace": "apps", "uid": "uid-1", "generation": 2},
        "spec": {"scaleTargetRef": {"name": "web", "service": "web", "port": 80}, **spec},
    }


def httpso(**spec: Any) -> HTTPScaledObject:
    return parse_httpscaledobject(doc(**spec))


def observed(status: dict[str, Any] | None = None) -> Observed:
    activity = Activity(True, False, NOW - 3600, 0.0)
    return Observed("standalone", 0, status or {}, SERVICES, activity=activity)


def conditions(p: Plan) -> dict[str, tuple[str, str]]:
    assert p.status is not None
    return {c["type"]: (c["status"], c["reason"]) for c in p.status.to_json()["conditions"]}


def test_maintenance_is_a_condition_while_it_is_on() -> None:
    on = plan(httpso(maintenance={}), observed(), NOW)
    assert conditions(on)[MAINTENANCE] == ("True", "Enabled")
    assert conditions(on)["Ready"] == ("True", "Ready")
    assert on.scale is None  # maintenance wakes nothing
    assert on.status is not None
    steady = plan(httpso(maintenance={}), observed(on.status.to_json()), NOW + 10)
    assert steady.status is None
    off = plan(httpso(maintenance={"enabled": False}), observed(on.status.to_json()), NOW + 20)
    assert MAINTENANCE not in conditions(off)


def test_a_user_agent_that_is_not_re2_is_ready_false_naming_the_field() -> None:
    with pytest.raises(ModelError) as err:
        httpso(wakeExclusions=[{"paths": [{"value": "/healthz"}]}, {"userAgent": "(?<!x)bot"}])
    p = plan(InvalidSpec(ObjectMeta("apps", "web", generation=2), err.value), observed(), NOW)
    ready = (
        next(c for c in p.status.to_json()["conditions"] if c["type"] == "Ready")
        if p.status
        else {}
    )
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith(
        "spec.wakeExclusions[1].userAgent: '(?<!x)bot' is not an RE2"
    )
