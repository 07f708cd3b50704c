"""plan(): exact outputs — whole statuses, conditions with their messages and generations,
problem messages, ScaledObject changes and the routes' binding rules."""

from __future__ import annotations

import calendar
import dataclasses
from typing import Any

import pytest

from tests.unit.test_operator_plan import NOW, POLICY, SERVICES, httpso, owned_so
from wakeway.model.conditions import Condition
from wakeway.model.errors import ModelError
from wakeway.model.meta import ObjectMeta
from wakeway.model.service import Service, ServicePort
from wakeway.operator import scaledobject
from wakeway.operator.objects import ScaledObjectView
from wakeway.operator.plan import (
    MAINTENANCE_MESSAGE,
    InvalidSpec,
    Observed,
    Plan,
    Problem,
    ScaledObjectChange,
    plan,
    plan_removal,
    service_problems,
)
from wakeway.operator.scaling import Activity, Recommendation
from wakeway.routing import BindingProblem, Conflict

pytestmark = pytest.mark.unit

T = "2023-11-14T22:13:20Z"  # timestamp(NOW)
SKIP = {"httpscaledobject.keda.sh/skip-scaledobject-creation": "true"}
NOT_READ = "the spec could not be read"
KEDA_READY = "the ScaledObject is generated; KEDA scales the workload"
AWAITING_KEDA = "KEDA has not reported on the ScaledObject yet"
NO_SCALER = "no answer from the scaler's StreamIsActive yet"
MORE_SERVICES = {
    **SERVICES,
    "bare": Service(ObjectMeta("apps", "bare"), "ClusterIP", (ServicePort("", 80),)),
    "empty": Service(ObjectMeta("apps", "empty"), "ClusterIP", ()),
}


def cond(type_: str, status: str, reason: str, message: str, gen: int = 3) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
        "lastTransitionTime": T,
    }


def status_of(p: Plan) -> dict[str, Any]:
    assert p.status is not None
    return p.status.to_json()


def condition_of(p: Plan, type_: str) -> dict[str, Any]:
    return next(c for c in status_of(p)["conditions"] if c["type"] == type_)


# --- whole statuses -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["keda", "standalone"])
def test_invalid_spec_status_is_exact(mode: Any) -> None:
    meta = ObjectMeta("apps", "web", uid="uid-1", generation=2)
    bad = InvalidSpec(meta, ModelError("spec.scalingMetric", "must set exactly one"))
    p = plan(bad, Observed(mode), NOW, POLICY)
    assert p == dataclasses.replace(Plan(), status=p.status)
    assert status_of(p) == {
        "observedGeneration": 2,
        "mode": mode,
        "conditions": [
            cond("Ready", "False", "InvalidSpec", "spec.scalingMetric: must set exactly one", 2),
            cond("Bound", "Unknown", "InvalidSpec", NOT_READ, 2),
            cond("Active", "Unknown", "InvalidSpec", NOT_READ, 2),
        ],
    }


def test_keda_status_and_scaled_object_are_exact() -> None:
    so = httpso()
    p = plan(so, Observed("keda", workload=2, services=SERVICES), NOW, POLICY)
    assert status_of(p) == {
        "observedGeneration": 3,
        "mode": "keda",
        "targetWorkload": "apps/v1/Deployment/web",
        "targetService": "web:http",
        "scaledObject": "web",
        "replicas": 2,
        "conditions": [
            cond("Ready", "True", "Ready", KEDA_READY),
            cond("Bound", "True", "NoRoutes", "spec.routes is empty"),
            cond("Active", "Unknown", "AwaitingKEDA", AWAITING_KEDA),
        ],
    }
    assert p.scaled_object == ScaledObjectChange(
        "create", "web", scaledobject.build(so, POLICY.scaler_address)
    )


def test_standalone_status_is_exact() -> None:
    down = Activity(connected=False, active=False, quiet_since=NOW - 1000)
    p = plan(
        httpso(), Observed("standalone", workload=2, services=SERVICES, activity=down), NOW, POLICY
    )
    assert status_of(p) == {
        "observedGeneration": 3,
        "mode": "standalone",
        "targetWorkload": "apps/v1/Deployment/web",
        "targetService": "web:http",
        "replicas": 2,
        "conditions": [
            cond("Ready", "True", "Ready", "the operator scales the workload"),
            cond("Bound", "True", "NoRoutes", "spec.routes is empty"),
            cond("Active", "Unknown", "ScalerUnavailable", NO_SCALER),
        ],
    }


@pytest.mark.parametrize("mode", ["keda", "standalone"])
def test_a_missing_workload_and_service_status_is_exact(mode: Any) -> None:
    so = httpso(scaleTargetRef={"name": "web", "service": "nope", "port": 80})
    observed = Observed(mode, workload=Problem("WorkloadNotFound", "no web"), services=SERVICES)
    p = plan(so, observed, NOW, POLICY)
    active = (
        cond("Active", "Unknown", "AwaitingKEDA", AWAITING_KEDA)
        if mode == "keda"
        else cond("Active", "Unknown", "ScalerUnavailable", NO_SCALER)
    )
    assert status_of(p) == {
        "observedGeneration": 3,
        "mode": mode,
        "conditions": [
            cond(
                "Ready",
                "False",
                "WorkloadNotFound",
                "no web; spec.scaleTargetRef: Service nope not found",
            ),
            cond("Bound", "True", "NoRoutes", "spec.routes is empty"),
            active,
        ],
    }
    assert p.scaled_object is None
    assert p.requeue_after == POLICY.workload_recheck


def test_a_stored_empty_last_scale_time_is_not_written_back() -> None:
    down = Activity(connected=False, active=False, quiet_since=NOW - 1000)
    observed = Observed(
        "standalone",
        workload=2,
        services=SERVICES,
        activity=down,
        status={"lastScaleTime": ""},
    )
    assert "lastScaleTime" not in status_of(plan(httpso(), observed, NOW, POLICY))
    kept = dataclasses.replace(observed, status={"lastScaleTime": "2023-11-14T20:00:00Z"})
    assert status_of(plan(httpso(), kept, NOW, POLICY))["lastScaleTime"] == "2023-11-14T20:00:00Z"


# --- Service and port problems ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        (
            {"service": "away", "port": 80},
            Problem(
                "ExternalNameService",
                "spec.scaleTargetRef: Service away is of type ExternalName, which is never "
                "followed as a backend",
                "spec.scaleTargetRef",
            ),
        ),
        (
            {"service": "web", "portName": "grpc"},
            Problem(
                "PortNotFound",
                "spec.scaleTargetRef.portName: Service web has no port named 'grpc' "
                "(named ports: http, admin)",
                "spec.scaleTargetRef",
            ),
        ),
        (
            {"service": "bare", "portName": "http"},
            Problem(
                "PortNotFound",
                "spec.scaleTargetRef.portName: Service bare has no port named 'http' "
                "(named ports: none)",
                "spec.scaleTargetRef",
            ),
        ),
        (
            {"service": "web", "port": 8080},
            Problem(
                "PortNotFound",
                "spec.scaleTargetRef.port: Service web has no port 8080 (ports: 80, 9090)",
                "spec.scaleTargetRef",
            ),
        ),
        (
            {"service": "empty", "port": 80},
            Problem(
                "PortNotFound",
                "spec.scaleTargetRef.port: Service empty has no port 80 (ports: none)",
                "spec.scaleTargetRef",
            ),
        ),
        (
            {"service": "nope", "port": 80},
            Problem(
                "ServiceNotFound",
                "spec.scaleTargetRef: Service nope not found",
                "spec.scaleTargetRef",
            ),
        ),
    ],
)
def test_backend_problems_are_exact_and_leave_the_target_service_out(
    ref: dict[str, Any], problem: Problem
) -> None:
    so = httpso(scaleTargetRef={"name": "web", **ref})
    assert service_problems(so, MORE_SERVICES) == [problem]
    p = plan(so, Observed("keda", workload=1, services=MORE_SERVICES), NOW, POLICY)
    s = status_of(p)
    assert "targetService" not in s
    assert s["conditions"][0] == cond("Ready", "False", problem.reason, problem.message)


def test_failover_problems_carry_the_prefix_and_their_field() -> None:
    so = httpso(coldStartTimeoutFailoverRef={"service": "web", "port": 81})
    field = "spec.coldStartTimeoutFailoverRef"
    assert service_problems(so, MORE_SERVICES) == [
        Problem(
            "FailoverPortNotFound",
            f"{field}.port: Service web has no port 81 (ports: 80, 9090)",
            field,
        )
    ]


# --- KEDA mode ----------------------------------------------------------------------------------


def test_keda_skip_annotation_conditions_are_exact() -> None:
    so = httpso(annotations=SKIP)
    p = plan(so, Observed("keda", workload=1, services=SERVICES), NOW, POLICY)
    assert status_of(p)["conditions"] == [
        cond(
            "Ready",
            "True",
            "ScaledObjectSkipped",
            "ScaledObject creation is skipped by annotation; the workload is valid",
        ),
        cond("Bound", "True", "NoRoutes", "spec.routes is empty"),
        cond(
            "Active",
            "Unknown",
            "ScaledObjectSkipped",
            "ScaledObject creation is skipped by annotation",
        ),
    ]


def test_keda_skip_annotation_deletes_ours_and_names_no_scaled_object() -> None:
    so = httpso(annotations=SKIP)
    ours = owned_so(scaledobject.desired_spec(so, POLICY.scaler_address))
    p = plan(so, Observed("keda", workload=1, services=SERVICES, scaled_object=ours), NOW, POLICY)
    assert p.scaled_object == ScaledObjectChange("delete", "web")
    assert "scaledObject" not in status_of(p)


def test_keda_a_scaled_object_we_do_not_own_is_named_in_ready() -> None:
    theirs = owned_so({}, uid="someone-else")
    p = plan(
        httpso(), Observed("keda", workload=1, services=SERVICES, scaled_object=theirs), NOW, POLICY
    )
    assert status_of(p)["conditions"] == [
        cond(
            "Ready",
            "False",
            "ScaledObjectNotOwned",
            "a ScaledObject named web exists and is not controlled by this HTTPScaledObject; "
            "delete it, or set the skip-scaledobject-creation annotation",
        ),
        cond("Bound", "True", "NoRoutes", "spec.routes is empty"),
        cond("Active", "Unknown", "AwaitingKEDA", AWAITING_KEDA),
    ]
    assert "scaledObject" not in status_of(p)


def test_keda_update_is_a_merge_patch_of_labels_and_spec() -> None:
    current = owned_so(scaledobject.desired_spec(httpso(), POLICY.scaler_address))
    after = httpso(scaledownPeriod=30)
    p = plan(
        after, Observed("keda", workload=1, services=SERVICES, scaled_object=current), NOW, POLICY
    )
    assert p.scaled_object == ScaledObjectChange(
        "update",
        "web",
        {
            "metadata": {"labels": scaledobject.desired_labels(after)},
            "spec": scaledobject.desired_spec(after, POLICY.scaler_address),
        },
    )
    assert status_of(p)["scaledObject"] == "web"


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        # The Active condition is found among others, whatever comes first.
        (
            (
                Condition("Ready", "True", "ScaledObjectReady", "ready"),
                Condition("Active", "False", "ScalerNotActive", "no traffic"),
            ),
            ("False", "ScalerNotActive", "no traffic"),
        ),
        # Unknown is not a report.
        (
            (Condition("Active", "Unknown", "Pending", "wait"),),
            ("Unknown", "AwaitingKEDA", AWAITING_KEDA),
        ),
        # No reason or message: ours stand in.
        ((Condition("Active", "True", "", ""),), ("True", "KEDA", "as KEDA reports")),
        ((), ("Unknown", "AwaitingKEDA", AWAITING_KEDA)),
    ],
)
def test_keda_active_condition_is_exact(
    reported: tuple[Condition, ...], expected: tuple[str, str, str]
) -> None:
    so = httpso()
    current = owned_so(scaledobject.desired_spec(so, POLICY.scaler_address), conditions=reported)
    p = plan(
        so, Observed("keda", workload=1, services=SERVICES, scaled_object=current), NOW, POLICY
    )
    assert condition_of(p, "Active") == cond("Active", *expected)


def test_removal_needs_both_labels_and_our_kind() -> None:
    only_name = ScaledObjectView(
        ObjectMeta("apps", "web"), "", "", {}, {scaledobject.HTTPSO_LABEL: "web"}
    )
    assert plan_removal("apps/web", only_name) == Plan()
    labelled = dataclasses.replace(only_name, labels=scaledobject.desired_labels(httpso()))
    assert plan_removal("apps/web", labelled) == Plan()
    ours = dataclasses.replace(labelled, controller_kind="HTTPScaledObject")
    assert plan_removal("apps/web", ours) == Plan(scaled_object=ScaledObjectChange("delete", "web"))


# --- Bound and routes ---------------------------------------------------------------------------


def route_conflict(route: str, winner: str, loser: str) -> Conflict:
    return Conflict(
        "HTTPRoute", f"HTTPRoute {route} rule 'main'", winner, loser, route=route, rule=0
    )


def bound(p: Plan) -> dict[str, Any]:
    return condition_of(p, "Bound")


def routed(routes: list[dict[str, Any]], **observed: Any) -> Plan:
    so = httpso(routes=routes)
    return plan(so, Observed("keda", workload=1, services=SERVICES, **observed), NOW, POLICY)


def test_bound_a_lost_rule_alone_is_a_rule_conflict() -> None:
    lost = route_conflict("apps/blog", "apps/old", "apps/web")
    p = routed([{"name": "blog", "ruleName": "main"}], conflicts=(lost,))
    assert bound(p) == cond("Bound", "False", "RuleConflict", lost.message)
    assert status_of(p)["conflicts"] == [
        {"namespace": "apps", "name": "old", "message": lost.message}
    ]


def test_bound_names_every_lost_rule() -> None:
    blog = route_conflict("apps/blog", "apps/old", "apps/web")
    news = route_conflict("apps/news", "apps/new", "apps/web")
    p = routed([{"name": "blog"}, {"name": "news"}], conflicts=(blog, news))
    assert bound(p) == cond("Bound", "False", "RuleConflict", f"{blog.message}; {news.message}")


def test_bound_counts_only_route_rules_this_object_lost() -> None:
    conflicts = (
        Conflict("HTTPScaledObject", "host a.example.com path /", "apps/old", "apps/web"),
        route_conflict("apps/blog", "apps/web", "apps/other"),
    )
    p = routed([{"name": "blog"}, {"name": "shop"}], conflicts=conflicts)
    assert bound(p) == cond("Bound", "True", "RoutesBound", "2 route binding(s) carry traffic")


def test_bound_names_every_problem_and_lost_rule() -> None:
    problems = (BindingProblem("apps/web", "apps/gone", None, "RouteNotFound", "no route"),)
    lost = route_conflict("apps/blog", "apps/old", "apps/web")
    p = routed(
        [{"name": "gone"}, {"name": "blog", "ruleName": "main"}],
        problems=problems,
        conflicts=(lost,),
    )
    assert bound(p) == cond("Bound", "False", "RouteNotFound", f"no route; {lost.message}")


def test_bound_message_is_cut_at_the_api_limit() -> None:
    long = "x" * 40_000
    problems = (BindingProblem("apps/web", "apps/gone", None, "RouteNotFound", long),)
    p = routed([{"name": "gone"}], problems=problems)
    assert bound(p) == cond("Bound", "False", "RouteNotFound", "x" * 32768)


def test_a_problem_applies_to_the_binding_of_its_rule_only() -> None:
    problems = (
        # On the rule the binding names: it applies.
        BindingProblem("apps/web", "apps/blog", "main", "RuleNotFound", "no rule main"),
        # On another rule of a route bound by rule name: it does not.
        BindingProblem("apps/web", "apps/news", "other", "RuleNotFound", "no rule other"),
        # A binding of the whole route takes a problem on any of its rules.
        BindingProblem("apps/web", "apps/shop", "x", "RuleNotFound", "no rule x"),
    )
    p = routed(
        [
            {"name": "blog", "ruleName": "main"},
            {"name": "news", "ruleName": "main"},
            {"name": "shop"},
        ],
        problems=problems,
    )
    assert status_of(p)["routes"] == [
        {
            "namespace": "apps",
            "name": "blog",
            "ruleName": "main",
            "bound": False,
            "reason": "RuleNotFound",
            "message": "no rule main",
        },
        {"namespace": "apps", "name": "news", "ruleName": "main", "bound": True},
        {
            "namespace": "apps",
            "name": "shop",
            "bound": False,
            "reason": "RuleNotFound",
            "message": "no rule x",
        },
    ]


# --- standalone, warm windows, maintenance ------------------------------------------------------

WINDOW = {"schedule": "0 9 * * *", "duration": "1h", "leadTime": "5m", "minReplicas": 2}
WAKE = calendar.timegm((2023, 11, 15, 8, 55, 0))  # the next wake after NOW


def test_standalone_plan_carries_the_history_it_decided() -> None:
    busy = Activity(True, True, NOW - 10, 15.0, NOW)
    p = plan(
        httpso(), Observed("standalone", workload=2, services=SERVICES, activity=busy), NOW, POLICY
    )
    # Kept at 2 for the stabilisation window: the current count and the metric's 1 remembered.
    assert p.scale is None
    assert p.history == (Recommendation(NOW, 2), Recommendation(NOW, 1))


def test_standalone_wake_to_is_at_least_min_replicas() -> None:
    down = Activity(connected=False, active=False, quiet_since=NOW - 1000)
    so = httpso(replicas={"min": 3, "max": 5})
    p = plan(so, Observed("standalone", workload=0, services=SERVICES, activity=down), NOW, POLICY)
    assert p.scale is None
    assert p.wake_to == 3


def test_warm_window_and_maintenance_conditions_are_exact() -> None:
    so = httpso(warmWindows=[WINDOW], replicas={"max": 5}, maintenance={})
    p = plan(so, Observed("standalone", workload=0, services=SERVICES), NOW, POLICY)
    assert status_of(p)["conditions"][3:] == [
        cond(
            "WarmWindows",
            "True",
            "Scheduled",
            "the operator keeps the workload at each of the 1 window(s)' minReplicas while it "
            "is open",
        ),
        cond("Maintenance", "True", "Enabled", MAINTENANCE_MESSAGE),
    ]


def test_warm_window_requeue_keeps_an_earlier_recheck() -> None:
    so = httpso(warmWindows=[WINDOW], replicas={"max": 5})
    gone = Problem("WorkloadNotFound", "no web")
    p = plan(so, Observed("standalone", workload=gone, services=SERVICES), NOW, POLICY)
    assert p.requeue_after == POLICY.workload_recheck


def test_warm_window_requeue_under_a_second_before_it_opens() -> None:
    so = httpso(warmWindows=[WINDOW], replicas={"max": 5})
    p = plan(so, Observed("standalone", workload=0, services=SERVICES), WAKE - 0.5, POLICY)
    assert p.requeue_after == pytest.approx(0.5)
