"""``wakeway status|explain`` output and the pure parts of the cluster commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from wakeway.ctl.cluster import object_status, resolve_target, what_happens_next
from wakeway.ctl.errors import UsageError
from wakeway.ctl.output import render_explanation, render_status
from wakeway.kube import Scale
from wakeway.model.objectstatus import (
    ASLEEP,
    AWAKE,
    SLEEPING,
    UNKNOWN,
    WAKING,
    ObjectStatus,
    state_of,
)
from wakeway.routing.explain import Candidate, Explanation

pytestmark = pytest.mark.unit

ROW = ObjectStatus(
    namespace="shop",
    name="api",
    state=AWAKE,
    replicas=2,
    ready=1,
    in_flight=3,
    held=0,
    routes_bound=1,
    routes=2,
    last_wake="2026-11-30T10:00:00Z",
    last_sleep=None,
    mode="standalone",
    workload="Deployment/api",
)


def test_status_table_is_kubectl_style() -> None:
    text = render_status([ROW], "table", namespaces=False)
    assert text.splitlines() == [
        "NAME   STATE   REPLICAS   IN-FLIGHT   HELD   ROUTES   LAST-WAKE              LAST-SLEEP",
        "api    awake   1/2        3           0      1/2      2026-11-30T10:00:00Z   -",
    ]
    wide = render_status([ROW], "table", namespaces=True).splitlines()
    assert wide[0].startswith("NAMESPACE   NAME")
    assert wide[1].startswith("shop        api")
    assert render_status([], "table", namespaces=False) == ""


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_status_json_and_yaml_carry_every_field(fmt: str) -> None:
    text = render_status([ROW], fmt, namespaces=False)
    doc = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    assert doc["items"][0] == {
        "namespace": "shop",
        "name": "api",
        "state": "awake",
        "replicas": 2,
        "ready": 1,
        "inFlight": 3,
        "held": 0,
        "routesBound": 1,
        "routes": 2,
        "lastWake": "2026-11-30T10:00:00Z",
        "lastSleep": None,
        "mode": "standalone",
        "workload": "Deployment/api",
    }
    assert ObjectStatus.from_json(doc["items"][0]) == ROW


def test_from_json_names_a_missing_field() -> None:
    doc = ROW.to_json()
    del doc["held"]
    with pytest.raises(ValueError, match="missing field 'held'"):
        ObjectStatus.from_json(doc)


@pytest.mark.parametrize(
    ("replicas", "ready", "state"),
    [(0, 0, ASLEEP), (1, 0, WAKING), (1, 1, AWAKE), (0, 1, SLEEPING), (None, None, UNKNOWN)],
)
def test_state(replicas: int | None, ready: int | None, state: str) -> None:
    assert state_of(replicas, ready) == state


def test_explanation_text() -> None:
    won = Candidate("shop/api", "HTTPRoute", "HTTPRoute shop/r rule api match #0", "selected", "x")
    lost = Candidate("shop/web", "HTTPScaledObject", "host * path /", "outranked", "it lost")
    text = render_explanation(Explanation("GET", "a.test", "/api", won, (lost,)), "table")
    assert text.splitlines() == [
        "request: GET a.test/api",
        "goes to: shop/api",
        "  via HTTPRoute shop/r rule api match #0",
        "  because x",
        "not chosen:",
        "  shop/web: host * path /: outranked: it lost",
    ]
    none = render_explanation(Explanation("GET", "a.test", "/", None, ()), "table")
    assert "goes to: nothing (the interceptor answers 404)" in none
    assert (
        json.loads(render_explanation(Explanation("GET", "a", "/", won, ()), "json"))["winner"][
            "object"
        ]
        == "shop/api"
    )


def httpso(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "api"},
        "spec": {"scaleTargetRef": {"name": "api-deploy"}, **spec},
        "status": status or {},
    }


def test_object_status_from_the_api_objects() -> None:
    status = {
        "mode": "standalone",
        "routes": [{"name": "r", "bound": True}, {"name": "s", "bound": False}],
        "conditions": [
            {"type": "Active", "status": "False", "lastTransitionTime": "2026-11-30T09:00:00Z"}
        ],
    }
    obj = httpso(status, routes=[{"name": "r"}, {"name": "s"}])
    row = object_status(obj, Scale(0, 0, "", "1"), 0)
    assert (row.state, row.replicas, row.ready) == (ASLEEP, 0, 0)
    assert (row.routes_bound, row.routes) == (1, 2)
    assert (row.last_wake, row.last_sleep) == (None, "2026-11-30T09:00:00Z")
    assert (row.in_flight, row.held, row.workload) == (None, None, "Deployment/api-deploy")
    gone = object_status(httpso(), None, None)
    assert (gone.state, gone.mode) == (UNKNOWN, "unknown")


def test_what_happens_next_says_who_owns_the_replicas() -> None:
    keda = httpso({"mode": "keda", "scaledObject": "api"})
    assert "KEDA owns its replicas (ScaledObject api)" in what_happens_next(keda, True)[0]
    assert "the next request wakes it again" in what_happens_next(keda, False)[0]
    assert what_happens_next(httpso(scaledownPeriod=60), True) == [
        "it sleeps again after 60s without requests (scaledownPeriod)"
    ]
    pinned = httpso(replicas={"min": 2})
    assert what_happens_next(pinned, False) == [
        "note: replicas.min is 2: the operator scales it back to 2"
    ]


def test_target_namespace_comes_from_flag_context_or_default(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "current-context": "a",
                "contexts": [
                    {"name": "a", "context": {"namespace": "team-a"}},
                    {"name": "b", "context": {}},
                ],
            }
        )
    )
    env = {"KUBECONFIG": str(kubeconfig)}
    assert resolve_target(None, None, None, False, env).namespace == "team-a"
    assert resolve_target(None, "b", None, False, env).namespace == "default"
    assert resolve_target(None, None, "x", False, env).namespace == "x"
    assert resolve_target(None, None, None, True, env).namespace is None
    with pytest.raises(UsageError, match="no context named 'c'"):
        resolve_target(None, "c", None, False, env)
    with pytest.raises(UsageError, match="cannot be read"):
        resolve_target(str(tmp_path / "absent"), None, None, False, {})
