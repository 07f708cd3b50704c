"""plan(): validation reasons, status, the KEDA ScaledObject, standalone effects, steady state."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from wakeway.model.conditions import Condition, rebase_status
from wakeway.model.errors import ModelError
from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.model.meta import ObjectMeta
from wakeway.model.service import Service, ServicePort, parse_service
from wakeway.model.trigger import parse_metadata, scaler_metadata
from wakeway.operator import scaledobject
from wakeway.operator.objects import ScaledObjectView, parse_scaled_object
from wakeway.operator.plan import (
    Event,
    InvalidSpec,
    Observed,
    Plan,
    Policy,
    Problem,
    ScaledObjectChange,
    plan,
    plan_removal,
    timestamp,
)
from wakeway.operator.scaling import Activity
from wakeway.routing import BindingProblem, Conflict

pytestmark = pytest.mark.unit

NOW = 1_700_000_000.0
POLICY = Policy(scaler_address="scaler.wakeway:9091", stabilization=300)
SERVICES = {
    "web": Service(
        ObjectMeta("apps", "web"),
        "ClusterIP",
        (ServicePort("http", 80), ServicePort("admin", 9090)),
    ),
    "away": Service(ObjectMeta("apps", "away"), "ExternalName", (ServicePort("http", 80),)),
}


def httpso(annotations: dict[str, str] | None = None, **spec: Any) -> HTTPScaledObject:
    ref = spec.pop("scaleTargetRef", {"name": "web", "service": "web", "portName": "http"})
    doc = {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {
            "name": "web",
            "namespace": "apps",
            "uid": "uid-1",
            "generation": 3,
            "creationTimestamp": "2023-01-01T00:00:00Z",
            "annotations": annotations or {},
        },
        "spec": {"scaleTargetRef": ref, "scaledownPeriod": 60, **spec},
    }
    return parse_httpscaledobject(doc)


def conditions(p: Plan) -> dict[str, tuple[str, str]]:
    assert p.status is not None
    return {c["type"]: (c["status"], c["reason"]) for c in p.status.to_json()["conditions"]}


def owned_so(spec: dict[str, Any], uid: str = "uid-1", **extra: Any) -> ScaledObjectView:
    return ScaledObjectView(
        ObjectMeta("apps", "web"),
        uid,
        "HTTPScaledObject",
        spec,
        scaledobject.desired_labels(httpso()),
        **extra,
    )


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "workload", "reason"),
    [
        ({"name": "web", "service": "web", "portName": "http"}, 1, None),
        ({"name": "web", "service": "web", "port": 80}, 1, None),
        ({"name": "web", "service": "web", "port": 8080}, 1, "PortNotFound"),
        ({"name": "web", "service": "web", "portName": "grpc"}, 1, "PortNotFound"),
        ({"name": "web", "service": "nope", "port": 80}, 1, "ServiceNotFound"),
        ({"name": "web", "service": "away", "port": 80}, 1, "ExternalNameService"),
        (
            {"name": "web", "service": "web", "port": 80},
            Problem("WorkloadNotFound", "Deployment web not found"),
            "WorkloadNotFound",
        ),
        (
            {"name": "web", "kind": "Job", "apiVersion": "batch/v1", "service": "web", "port": 80},
            Problem("NoScaleSubresource", "batch/v1 Job web has no /scale subresource"),
            "NoScaleSubresource",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["keda", "standalone"])
def test_validation_reasons(
    ref: dict[str, Any], workload: int | Problem, reason: str | None, mode: Any
) -> None:
    p = plan(
        httpso(scaleTargetRef=ref),
        Observed(mode, workload=workload, services=SERVICES),
        NOW,
        POLICY,
    )
    ready = conditions(p)["Ready"]
    if reason is None:
        assert ready[0] == "True"
    else:
        assert ready == ("False", reason)
        # Nothing is scaled and no ScaledObject is made for an object that is not Ready.
        assert p.scale is None
        assert p.scaled_object is None
    assert p.status is not None
    assert p.status.to_json()["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in p.status.to_json()["conditions"])


def test_failover_service_is_checked_too() -> None:
    so = httpso(coldStartTimeoutFailoverRef={"service": "away", "port": 80})
    p = plan(so, Observed("keda", workload=1, services=SERVICES), NOW, POLICY)
    assert conditions(p)["Ready"] == ("False", "FailoverExternalNameService")
    assert p.status is not None
    assert p.status.to_json()["targetService"] == "web:http"  # the main backend did resolve


def test_every_problem_is_in_the_message() -> None:
    so = httpso(scaleTargetRef={"name": "web", "service": "nope", "port": 80})
    p = plan(so, Observed("keda", workload=Problem("WorkloadNotFound", "no web")), NOW, POLICY)
    assert p.status is not None
    ready = next(c for c in p.status.to_json()["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "WorkloadNotFound"
    assert "no web" in ready["message"]
    assert "Service nope not found" in ready["message"]
    assert "targetWorkload" not in p.status.to_json()
    assert "targetService" not in p.status.to_json()


def test_invalid_spec_is_reported_with_the_field() -> None:
    meta = ObjectMeta("apps", "web", uid="uid-1", generation=2)
    bad = InvalidSpec(meta, ModelError("spec.scalingMetric", "must set exactly one"))
    p = plan(bad, Observed("keda"), NOW, POLICY)
    assert p.status is not None
    ready = p.status.to_json()["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"] == "spec.scalingMetric: must set exactly one"
    assert p.scaled_object is None
    again = plan(bad, Observed("keda", status=p.status.to_json()), NOW + 5, POLICY)
    assert not again.writes


# --- status ------------------------------------------------------------------------------------


def test_status_fields_when_valid() -> None:
    p = plan(httpso(), Observed("keda", workload=2, services=SERVICES), NOW, POLICY)
    assert p.status is not None
    s = p.status.to_json()
    assert s["targetWorkload"] == "apps/v1/Deployment/web"
    assert s["targetService"] == "web:http"
    assert s["mode"] == "keda"
    assert s["scaledObject"] == "web"
    assert s["replicas"] == 2
    assert conditions(p) == {
        "Ready": ("True", "Ready"),
        "Bound": ("True", "NoRoutes"),
        "Active": ("Unknown", "AwaitingKEDA"),
    }
    assert all(c["lastTransitionTime"] == "2023-11-14T22:13:20Z" for c in s["conditions"])


def test_route_problems_and_conflicts_go_to_status() -> None:
    so = httpso(
        routes=[{"name": "shop"}, {"name": "blog", "ruleName": "main"}, {"name": "gone"}],
    )
    problems = (
        BindingProblem("apps/web", "apps/gone", None, "RouteNotFound", "HTTPRoute apps/gone ..."),
    )
    conflicts = (
        Conflict(
            "HTTPRoute",
            "HTTPRoute apps/blog rule 'main'",
            "apps/old",
            "apps/web",
            route="apps/blog",
            rule=0,
        ),
        Conflict("HTTPScaledObject", "host a.example.com path /", "apps/old", "apps/web"),
        Conflict("HTTPScaledObject", "host b.example.com path /", "apps/web", "apps/other"),
    )
    observed = Observed(
        "standalone", workload=1, services=SERVICES, problems=problems, conflicts=conflicts
    )
    p = plan(so, observed, NOW, POLICY)
    assert p.status is not None
    assert conditions(p)["Bound"] == ("False", "RouteNotFound")
    assert conditions(p)["Ready"] == ("True", "Ready")  # routes do not make it unready
    assert p.status.to_json()["routes"] == [
        {"namespace": "apps", "name": "shop", "bound": True},
        {
            "namespace": "apps",
            "name": "blog",
            "ruleName": "main",
            "bound": False,
            "reason": "RuleConflict",
            "message": conflicts[0].message,
        },
        {
            "namespace": "apps",
            "name": "gone",
            "bound": False,
            "reason": "RouteNotFound",
            "message": "HTTPRoute apps/gone ...",
        },
    ]
    assert p.status.to_json()["conflicts"] == [
        {"namespace": "apps", "name": "old", "message": conflicts[0].message},
        {"namespace": "apps", "name": "old", "message": conflicts[1].message},
    ]


def test_all_routes_bound_with_their_identity() -> None:
    so = httpso(routes=[{"name": "shop"}])
    identities = {"apps/shop": "apps/shop;0123abcd"}
    observed = Observed("keda", workload=1, services=SERVICES, identities=identities)
    p = plan(so, observed, NOW, POLICY)
    assert conditions(p)["Bound"] == ("True", "RoutesBound")
    assert p.status is not None
    assert p.status.to_json()["routes"] == [
        {"namespace": "apps", "name": "shop", "identity": "apps/shop;0123abcd", "bound": True}
    ]


def test_identity_only_where_the_binding_holds_its_rules() -> None:
    """Even handed an identity for every route, plan publishes none for a refused binding, a
    missing route or a lost rule; a bound rule that does not stamp it yet gets it (its author
    needs the value)."""
    so = httpso(
        routes=[
            {"name": "theirs", "namespace": "bank"},
            {"name": "gone"},
            {"name": "blog", "ruleName": "main"},
            {"name": "shop"},
        ]
    )
    keys = ("bank/theirs", "apps/gone", "apps/blog", "apps/shop")
    problems = (
        BindingProblem("apps/web", "bank/theirs", None, "RefNotPermitted", "no grant"),
        BindingProblem("apps/web", "apps/gone", None, "RouteNotFound", "no route"),
        BindingProblem("apps/web", "apps/shop", None, "IdentityNotStamped", "stamp it"),
    )
    conflicts = (
        Conflict(
            "HTTPRoute",
            "HTTPRoute apps/blog rule 'main'",
            "apps/old",
            "apps/web",
            route="apps/blog",
            rule=0,
        ),
    )
    observed = Observed(
        "standalone",
        workload=1,
        services=SERVICES,
        problems=problems,
        conflicts=conflicts,
        identities={k: f"{k};tag" for k in keys},
    )
    p = plan(so, observed, NOW, POLICY)
    assert p.status is not None
    assert {r["name"]: r.get("identity") for r in p.status.to_json()["routes"]} == {
        "theirs": None,
        "gone": None,
        "blog": None,
        "shop": "apps/shop;tag",
    }


def test_a_missing_workload_is_looked_at_again_soon() -> None:
    gone = Problem("WorkloadNotFound", "Deployment apps/web (apps/v1) not found")
    p = plan(httpso(), Observed("standalone", workload=gone, services=SERVICES), NOW, POLICY)
    assert conditions(p)["Ready"] == ("False", "WorkloadNotFound")
    assert p.requeue_after == POLICY.workload_recheck


def test_transition_time_is_kept_while_the_status_holds() -> None:
    first = plan(httpso(), Observed("keda", workload=1, services=SERVICES), NOW, POLICY)
    assert first.status is not None
    # Another field changes (replicas); the conditions keep their transition times.
    p = plan(
        httpso(),
        Observed("keda", workload=4, services=SERVICES, status=first.status.to_json()),
        NOW + 60,
    )
    assert p.status is not None
    assert p.status.to_json()["replicas"] == 4
    assert p.status.to_json()["conditions"] == first.status.to_json()["conditions"]


def test_a_plan_from_a_stale_cache_rebased_on_the_stored_status_writes_nothing() -> None:
    """The cache has not delivered our own last write yet: the replayed plan differs from it
    only in transition times, and rebasing on the stored status removes that difference."""
    stale = Observed("keda", workload=1, services=SERVICES)
    first = plan(httpso(), stale, NOW, POLICY).status
    again = plan(httpso(), stale, NOW + 1, POLICY).status
    assert first is not None
    assert again is not None
    written, replay = first.to_json(), again.to_json()
    assert replay != written  # a write the API server would take: the flaw being fixed
    assert rebase_status(replay, written, timestamp(NOW + 1)) == written
    # A condition that did change still gets the new time.
    moved = plan(httpso(), Observed("keda", workload=0, services={}), NOW + 1, POLICY).status
    assert moved is not None
    rebased = rebase_status(moved.to_json(), written, timestamp(NOW + 1))
    ready = next(c for c in rebased["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", timestamp(NOW + 1))


# --- KEDA mode ---------------------------------------------------------------------------------


def test_keda_scaled_object_is_created_owned_and_complete() -> None:
    so = httpso(
        replicas={"min": 1, "max": 7},
        scaledownPeriod=120,
        initialCooldownPeriod=30,
        scalingMetric={"requestRate": {"targetValue": 20, "window": "2m", "granularity": "2s"}},
    )
    p = plan(so, Observed("keda", workload=1, services=SERVICES), NOW, POLICY)
    assert p.scaled_object is not None
    assert p.scaled_object.action == "create"
    body = p.scaled_object.body
    assert body["apiVersion"] == "keda.sh/v1alpha1"
    assert body["kind"] == "ScaledObject"
    assert body["metadata"]["name"] == "web"
    assert body["metadata"]["namespace"] == "apps"
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "http.keda.sh/v1alpha1",
            "kind": "HTTPScaledObject",
            "name": "web",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert body["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicaCount": 1,
        "maxReplicaCount": 7,
        "cooldownPeriod": 120,
        "initialCooldownPeriod": 30,
        "triggers": [
            {
                "type": "external-push",
                "name": "http",
                "metadata": {
                    "scalerAddress": "scaler.wakeway:9091",
                    "httpScaledObject": "web",
                    "namespace": "apps",
                    "metric": "requestRate",
                    "targetValue": "20",
                    "window": "120s",
                    "granularity": "2s",
                },
            }
        ],
    }


def test_keda_steady_state_plans_no_writes() -> None:
    so = httpso()
    first = plan(so, Observed("keda", workload=1, services=SERVICES), NOW, POLICY)
    assert first.scaled_object is not None
    assert first.status is not None
    # The API server added defaults and KEDA wrote its own fields: still no update.
    stored = dict(scaledobject.desired_spec(so, POLICY.scaler_address))
    stored.update(pollingInterval=30, advanced={"restoreToOriginalReplicaCount": False})
    current = owned_so(stored)
    steady = plan(
        so,
        Observed(
            "keda",
            workload=1,
            services=SERVICES,
            status=first.status.to_json(),
            scaled_object=current,
        ),
        NOW + 300,
        POLICY,
    )
    assert steady == Plan()
    assert not steady.writes


@pytest.mark.parametrize(
    "change",
    [
        {"replicas": {"min": 0, "max": 3}},
        {"scaledownPeriod": 30},
        {"scalingMetric": {"concurrency": {"targetValue": 5}}},
        {"scaleTargetRef": {"name": "api", "service": "web", "port": 80}},
    ],
)
def test_keda_scaled_object_is_updated_when_the_spec_changes(change: dict[str, Any]) -> None:
    before = httpso()
    current = owned_so(scaledobject.desired_spec(before, POLICY.scaler_address))
    after = httpso(**change)
    p = plan(
        after,
        Observed("keda", workload=1, services=SERVICES, scaled_object=current),
        NOW,
        POLICY,
    )
    assert p.scaled_object is not None
    assert p.scaled_object.action == "update"
    assert p.scaled_object.body["spec"] == scaledobject.desired_spec(after, POLICY.scaler_address)


def test_keda_stale_trigger_metadata_is_replaced() -> None:
    spec = scaledobject.desired_spec(httpso(), POLICY.scaler_address)
    spec["triggers"][0]["metadata"]["window"] = "60s"  # left from an earlier requestRate
    p = plan(
        httpso(),
        Observed("keda", workload=1, services=SERVICES, scaled_object=owned_so(spec)),
        NOW,
        POLICY,
    )
    assert p.scaled_object is not None
    assert p.scaled_object.action == "update"


def test_keda_skip_annotation() -> None:
    skip = {"httpscaledobject.keda.sh/skip-scaledobject-creation": "true"}
    so = httpso(annotations=skip)
    nothing = plan(so, Observed("keda", workload=1, services=SERVICES), NOW, POLICY)
    assert nothing.scaled_object is None
    assert conditions(nothing)["Ready"] == ("True", "ScaledObjectSkipped")
    assert nothing.status is not None
    assert "scaledObject" not in nothing.status.to_json()
    # One we created before the annotation was set is deleted...
    ours = owned_so(scaledobject.desired_spec(so, POLICY.scaler_address))
    p = plan(so, Observed("keda", workload=1, services=SERVICES, scaled_object=ours), NOW, POLICY)
    assert p.scaled_object == ScaledObjectChange("delete", "web")
    # ... and the user's own is left alone.
    theirs = dataclasses.replace(ours, controller_uid="", controller_kind="")
    p = plan(so, Observed("keda", workload=1, services=SERVICES, scaled_object=theirs), NOW, POLICY)
    assert p.scaled_object is None


def test_keda_a_scaled_object_we_do_not_own_is_not_taken_over() -> None:
    theirs = owned_so({}, uid="someone-else")
    p = plan(
        httpso(), Observed("keda", workload=1, services=SERVICES, scaled_object=theirs), NOW, POLICY
    )
    assert p.scaled_object is None
    assert conditions(p)["Ready"] == ("False", "ScaledObjectNotOwned")


def test_keda_active_mirrors_the_scaled_object() -> None:
    so = httpso()
    current = owned_so(
        scaledobject.desired_spec(so, POLICY.scaler_address),
        conditions=(Condition("Active", "True", "ScalerActive", "Scaling is performed"),),
    )
    p = plan(
        so, Observed("keda", workload=1, services=SERVICES, scaled_object=current), NOW, POLICY
    )
    assert conditions(p)["Active"] == ("True", "ScalerActive")


def test_removal_deletes_only_what_we_created() -> None:
    ours = owned_so({})
    assert plan_removal("apps/web", ours).scaled_object == ScaledObjectChange("delete", "web")
    theirs = dataclasses.replace(ours, labels={})
    assert plan_removal("apps/web", theirs) == Plan()
    assert plan_removal("apps/web", None) == Plan()


# --- standalone mode ---------------------------------------------------------------------------


def active(
    on: bool,
    metric: float | None = None,
    quiet_since: float = NOW - 10,
    last_active: float | None = None,
) -> Activity:
    if on:
        last_active = NOW
    return Activity(True, on, quiet_since, metric, last_active)


def test_standalone_wakes_from_zero_with_an_event_and_status() -> None:
    observed = Observed("standalone", workload=0, services=SERVICES, activity=active(True))
    p = plan(httpso(), observed, NOW, POLICY)
    assert p.scale == 1
    assert p.events == (Event("Woken", "Scaled from 0 to 1: requests are waiting"),)
    assert p.status is not None
    assert p.status.to_json()["replicas"] == 1
    assert p.status.to_json()["lastScaleTime"] == "2023-11-14T22:13:20Z"
    assert conditions(p)["Active"] == ("True", "RequestsActive")
    assert p.scaled_object is None


def test_standalone_scales_to_zero_after_the_period_and_then_is_steady() -> None:
    quiet = active(False, 0, quiet_since=NOW - 61)
    first = plan(
        httpso(), Observed("standalone", workload=1, services=SERVICES, activity=quiet), NOW
    )
    assert first.scale == 0
    assert [e.reason for e in first.events] == ["ScaledToZero"]
    assert first.status is not None
    steady = plan(
        httpso(),
        Observed(
            "standalone",
            workload=0,
            services=SERVICES,
            activity=quiet,
            status=first.status.to_json(),
        ),
        NOW + 30,
    )
    assert steady == Plan(wake_to=1)  # no writes; a turn to active may wake it directly


def test_standalone_waits_and_says_when_to_look_again() -> None:
    quiet = active(False, 0, quiet_since=NOW - 20)
    p = plan(httpso(), Observed("standalone", workload=1, services=SERVICES, activity=quiet), NOW)
    assert p.scale is None
    assert p.requeue_after == pytest.approx(40)


def test_standalone_scaler_unavailable() -> None:
    down = Activity(connected=False, active=False, quiet_since=NOW - 1000)
    p = plan(httpso(), Observed("standalone", workload=3, services=SERVICES, activity=down), NOW)
    assert p.scale is None
    assert conditions(p)["Active"] == ("Unknown", "ScalerUnavailable")


def test_standalone_not_ready_is_not_scaled() -> None:
    so = httpso(scaleTargetRef={"name": "web", "service": "nope", "port": 80})
    p = plan(so, Observed("standalone", workload=0, services=SERVICES, activity=active(True)), NOW)
    assert p.scale is None


def test_standalone_steady_state_plans_no_writes() -> None:
    observed = Observed("standalone", workload=2, services=SERVICES, activity=active(True, 15))
    first = plan(httpso(), observed, NOW, POLICY)
    assert first.scale is None
    assert first.status is not None
    again = plan(
        httpso(),
        dataclasses.replace(observed, status=first.status.to_json(), history=first.history),
        NOW + 1,
        POLICY,
    )
    assert not again.writes


@pytest.mark.parametrize(
    ("activity", "expected", "recheck"),
    [
        # Active now: True at once.
        (active(True), ("True", "RequestsActive"), None),
        # Quiet for 5 s of a 30 s hold: still True (no write per burst), look again at 30 s.
        (active(False, last_active=NOW - 5), ("True", "RequestsActive"), 25.0),
        # Quiet for the whole hold: False.
        (active(False, last_active=NOW - 30), ("False", "Idle"), None),
        # Never active since we began watching: False.
        (active(False), ("False", "Idle"), None),
    ],
)
def test_standalone_active_condition_has_hysteresis(
    activity: Activity, expected: tuple[str, str], recheck: float | None
) -> None:
    observed = Observed("standalone", workload=2, services=SERVICES, activity=activity)
    policy = dataclasses.replace(POLICY, active_hold=30.0)
    p = plan(httpso(replicas={"min": 2}), observed, NOW, policy)
    assert conditions(p)["Active"] == expected
    assert p.requeue_after == (None if recheck is None else pytest.approx(recheck))


def test_standalone_bursts_write_status_once_not_per_burst() -> None:
    """Traffic that comes and goes within the hold: the first burst writes Active=True, the
    quiet gaps and later bursts write nothing."""
    so = httpso()
    observed = Observed("standalone", workload=1, services=SERVICES, activity=active(True, 1))
    first = plan(so, observed, NOW, POLICY)
    assert first.status is not None
    status, history = first.status.to_json(), first.history
    for step in range(1, 20):
        on = step % 2 == 0
        act = active(on, 1, quiet_since=NOW + step - 1, last_active=NOW + step - 1)
        p = plan(
            so,
            dataclasses.replace(observed, activity=act, status=status, history=history),
            NOW + step,
            POLICY,
        )
        assert not p.writes, step
        history = p.history


def test_standalone_fast_wake_is_recorded_by_the_next_pass() -> None:
    """The controller scaled 0 -> 1 on the stream's word alone; the pass after it writes the
    Event and lastScaleTime and plans no second scale."""
    observed = Observed(
        "standalone", workload=1, services=SERVICES, activity=active(True), woken_at=NOW - 0.2
    )
    p = plan(httpso(), observed, NOW, POLICY)
    assert p.scale is None
    assert p.events == (Event("Woken", "Scaled from 0 to 1: requests are waiting"),)
    assert p.status is not None
    assert p.status.to_json()["lastScaleTime"] == "2023-11-14T22:13:19Z"
    assert p.wake_to is None  # not at zero any more


def test_standalone_wake_to_only_when_valid_and_at_zero() -> None:
    idle = active(False, 0, quiet_since=NOW - 1)
    at_zero = Observed("standalone", workload=0, services=SERVICES, activity=idle)
    assert plan(httpso(), at_zero, NOW, POLICY).wake_to == 1
    warm = httpso(replicas={"min": 3, "max": 5})
    assert plan(warm, at_zero, NOW, POLICY).scale == 3  # brought up to min, not a wake
    broken = httpso(scaleTargetRef={"name": "web", "service": "nope", "port": 80})
    assert plan(broken, at_zero, NOW, POLICY).wake_to is None
    running = dataclasses.replace(at_zero, workload=2)
    assert plan(httpso(), running, NOW, POLICY).wake_to is None
    keda = Observed("keda", workload=0, services=SERVICES)
    assert plan(httpso(), keda, NOW, POLICY).wake_to is None


# --- parsers and metadata ----------------------------------------------------------------------


def test_scaler_metadata_matches_the_scalers_contract() -> None:
    so = httpso(scalingMetric={"requestRate": {"targetValue": 2.5, "window": "90s"}})
    assert scaler_metadata(so) == {
        "httpScaledObject": "web",
        "namespace": "apps",
        "metric": "requestRate",
        "targetValue": "2.5",
        "window": "90s",
        "granularity": "1s",
    }
    target = parse_metadata(scaler_metadata(so), "other")
    assert (target.key, target.kind, target.target_value, target.window) == (
        "apps/web",
        "requestRate",
        2.5,
        90.0,
    )


def test_service_and_scaled_object_parsers() -> None:
    svc = parse_service(
        {
            "metadata": {"name": "web", "namespace": "apps"},
            "spec": {"type": "ExternalName", "ports": [{"name": "http", "port": 80}, {"port": 81}]},
        }
    )
    assert (svc.key, svc.name, svc.type) == ("apps/web", "web", "ExternalName")
    assert svc.ports == (ServicePort("http", 80), ServicePort("", 81))
    so = parse_scaled_object(
        {
            "metadata": {
                "name": "web",
                "namespace": "apps",
                "ownerReferences": [
                    {"kind": "HTTPScaledObject", "uid": "uid-1", "controller": True, "name": "web"}
                ],
            },
            "spec": {"minReplicaCount": 0},
            "status": {"conditions": [{"type": "Active", "status": "False", "reason": "R"}]},
        }
    )
    assert so.owned_by("uid-1")
    assert not so.owned_by("uid-2")
    assert so.conditions[0].status == "False"
