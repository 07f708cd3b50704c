"""plan() with warm windows, on a virtual clock: standalone keeps the workload up through a
window and lets it sleep after; KEDA mode carries one cron trigger per window, or says which
field it cannot express."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from wakeway.model.httpso import HTTPScaledObject, parse_httpscaledobject
from wakeway.model.meta import ObjectMeta
from wakeway.model.service import Service, ServicePort
from wakeway.operator import scaledobject
from wakeway.operator.objects import ScaledObjectView
from wakeway.operator.plan import Observed, Plan, Policy, plan
from wakeway.operator.scaling import Activity

pytestmark = pytest.mark.unit

POLICY = Policy(scaler_address="scaler.wakeway:9091", stabilization=300)
SERVICES = {"web": Service(ObjectMeta("apps", "web"), "ClusterIP", (ServicePort("http", 80),))}
DAY = "2026-01-12"  # a Monday
MORNING = {"schedule": "0 9 * * *", "duration": "1h", "leadTime": "5m", "minReplicas": 2}


def at(clock: str) -> float:
    return datetime.fromisoformat(f"{DAY} {clock}").replace(tzinfo=UTC).timestamp()


def httpso(*windows: dict[str, Any], **spec: Any) -> HTTPScaledObject:
    doc = {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "web", "namespace": "apps", "uid": "uid-1", "generation": 2},
        "spec": {
            "scaleTargetRef": {"name": "web", "service": "web", "port": 80},
            "scaledownPeriod": 60,
            "replicas": {"max": 10},
            "warmWindows": list(windows),
            **spec,
        },
    }
    return parse_httpscaledobject(doc)


def idle(metric: float = 0.0) -> Activity:
    """Connected, no requests since 06:00."""
    return Activity(True, False, at("06:00"), metric)


def conditions(p: Plan) -> dict[str, tuple[str, str, str]]:
    assert p.status is not None
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in p.status.to_json()["conditions"]
    }


# --- standalone ---------------------------------------------------------------------------------


def test_standalone_a_window_wakes_early_keeps_it_up_through_idle_time_and_lets_it_sleep() -> None:
    so = httpso(MORNING)
    observed = Observed("standalone", workload=0, services=SERVICES, activity=idle())

    # 08:50, asleep: nothing to do yet; look again when the lead time begins (08:55).
    before = plan(so, observed, at("08:50"), POLICY)
    assert before.scale is None
    assert before.requeue_after == pytest.approx(5 * 60)
    assert before.status is not None
    assert before.status.to_json()["nextWarmWindow"] == {
        "index": 0,
        "wakeAt": f"{DAY}T08:55:00Z",
        "start": f"{DAY}T09:00:00Z",
        "end": f"{DAY}T10:00:00Z",
        "minReplicas": 2,
    }

    # 08:55: the lead time wakes it, to the window's minReplicas, with no request at all.
    woken = plan(
        so, dataclasses.replace(observed, status=before.status.to_json()), at("08:55"), POLICY
    )
    assert woken.scale == 2
    (event,) = woken.events
    assert event.reason == "Scaled"
    assert "spec.warmWindows[0] is open until 2026-01-12T10:00:00Z" in event.message
    assert woken.requeue_after == pytest.approx(65 * 60)  # until the window closes

    # 09:30, idle for hours (scaledownPeriod is 60 s): it stays up.
    assert woken.status is not None
    up = dataclasses.replace(
        observed, workload=2, status=woken.status.to_json(), history=woken.history
    )
    held = plan(so, up, at("09:30"), POLICY)
    assert held.scale is None
    assert held.requeue_after == pytest.approx(30 * 60)
    # The same pass without the window would have put it to sleep.
    assert plan(httpso(), up, at("09:30"), POLICY).scale == 0

    # 10:00: the window closes; idle for longer than scaledownPeriod, it goes to sleep.
    after = plan(
        so,
        dataclasses.replace(up, status=held.status.to_json() if held.status else up.status),
        at("10:00"),
        POLICY,
    )
    assert after.scale == 0
    assert [e.reason for e in after.events] == ["ScaledToZero"]
    assert after.status is not None
    assert after.status.to_json()["nextWarmWindow"]["start"] == "2026-01-13T09:00:00Z"  # tomorrow's


def test_standalone_the_larger_of_the_window_and_traffic_applies() -> None:
    so = httpso(MORNING, scalingMetric={"concurrency": {"targetValue": 10}})
    busy = Observed("standalone", workload=5, services=SERVICES, activity=idle(metric=50))
    assert plan(so, busy, at("09:30"), POLICY).scale is None  # traffic wants 5 > 2: kept
    quiet = Observed("standalone", workload=1, services=SERVICES, activity=idle(metric=5))
    raised = plan(so, quiet, at("09:30"), POLICY)
    assert raised.scale == 2  # traffic wants 1 < 2: the window's floor
    assert "warm window" in raised.events[0].message


def test_standalone_a_window_wakes_even_before_the_scaler_answers() -> None:
    down = Activity(connected=False, active=False, quiet_since=at("06:00"))
    observed = Observed("standalone", workload=0, services=SERVICES, activity=down)
    assert plan(httpso(MORNING), observed, at("09:10"), POLICY).scale == 2
    assert plan(httpso(), observed, at("09:10"), POLICY).scale is None


def test_standalone_status_changes_only_when_a_window_opens_or_closes() -> None:
    so = httpso(MORNING)
    observed = Observed("standalone", workload=2, services=SERVICES, activity=idle())
    first = plan(so, observed, at("09:01"), POLICY)
    assert first.status is not None
    steady = dataclasses.replace(observed, status=first.status.to_json(), history=first.history)
    for clock in ("09:10", "09:30", "09:59"):
        assert not plan(so, steady, at(clock), POLICY).writes, clock
    assert conditions(first)["WarmWindows"][:2] == ("True", "Scheduled")


def test_standalone_wake_to_covers_the_window_floor() -> None:
    observed = Observed("standalone", workload=0, services=SERVICES, activity=idle())
    assert plan(httpso(MORNING), observed, at("12:00"), POLICY).wake_to == 1
    assert "WarmWindows" not in conditions(plan(httpso(), observed, at("12:00"), POLICY))


# --- KEDA ----------------------------------------------------------------------------------------


def cron(i: int, start: str, end: str, replicas: int, tz: str = "UTC") -> dict[str, Any]:
    return {
        "type": "cron",
        "name": f"warm-window-{i}",
        "metadata": {"timezone": tz, "start": start, "end": end, "desiredReplicas": str(replicas)},
    }


def test_keda_each_window_is_a_cron_trigger_beside_the_http_one() -> None:
    office = {
        "schedule": "0 9 * * MON-FRI",
        "timeZone": "Europe/Berlin",
        "duration": "8h",
        "leadTime": "10m",
        "minReplicas": 3,
    }
    night = {"schedule": "0 22 * * 1-5", "duration": "4h"}
    so = httpso(office, night)
    p = plan(so, Observed("keda", workload=0, services=SERVICES), at("12:00"), POLICY)
    assert p.scaled_object is not None
    assert p.scaled_object.action == "create"
    triggers = p.scaled_object.body["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["external-push", "cron", "cron"]
    assert triggers[1:] == [
        cron(0, "50 8 * * MON-FRI", "0 17 * * MON-FRI", 3, "Europe/Berlin"),
        cron(1, "0 22 * * 1-5", "0 2 * * 2-6", 1),
    ]
    assert conditions(p)["WarmWindows"][:2] == ("True", "CronTriggers")
    # Status shows the next window in KEDA mode too, and a pass looks again when it changes.
    assert p.status is not None
    assert p.status.to_json()["nextWarmWindow"] == {
        "index": 0,
        "wakeAt": f"{DAY}T07:50:00Z",  # 08:50 in Berlin
        "start": f"{DAY}T08:00:00Z",
        "end": f"{DAY}T16:00:00Z",
        "minReplicas": 3,
    }
    assert p.requeue_after == pytest.approx(4 * 3600)


@pytest.mark.parametrize(
    ("window", "field", "says"),
    [
        ({"schedule": "0 9 * * *", "duration": "90s"}, "duration", "not whole minutes"),
        ({"schedule": "0 9 * * *", "duration": "1h", "leadTime": "30s"}, "leadTime", "minutes"),
        ({"schedule": "0 9,22 * * *", "duration": "4h"}, "duration", "crosses midnight"),
        ({"schedule": "5 0 1 * *", "duration": "1h", "leadTime": "10m"}, "leadTime", "month"),
        ({"schedule": "0 9,11 * * *", "duration": "3h"}, "duration", "overlapping"),
        ({"schedule": "0 9 * * *", "duration": "24h"}, "duration", "back-to-back"),
    ],
)
def test_keda_a_window_it_cannot_express_is_left_out_and_named(
    window: dict[str, Any], field: str, says: str
) -> None:
    fine = {"schedule": "0 6 * * *", "duration": "1h"}
    p = plan(httpso(fine, window), Observed("keda", workload=0, services=SERVICES), 0.0, POLICY)
    assert p.scaled_object is not None
    triggers = p.scaled_object.body["spec"]["triggers"]
    assert [t["name"] for t in triggers] == ["http", "warm-window-0"]  # the other still goes
    status, reason, message = conditions(p)["WarmWindows"]
    assert (status, reason) == ("False", "NotExpressible")
    assert message.startswith(f"spec.warmWindows[1].{field}: ")
    assert says in message
    assert conditions(p)["Ready"][0] == "True"  # HTTP scaling is unaffected


def test_keda_a_changed_window_updates_the_scaled_object() -> None:
    before = httpso(MORNING)
    spec = scaledobject.desired_spec(before, POLICY.scaler_address)
    current = ScaledObjectView(
        ObjectMeta("apps", "web"),
        "uid-1",
        "HTTPScaledObject",
        spec,
        scaledobject.desired_labels(before),
    )
    observed = Observed("keda", workload=0, services=SERVICES, scaled_object=current)
    assert plan(before, observed, at("12:00"), POLICY).scaled_object is None
    later = httpso({**MORNING, "schedule": "0 8 * * *"})
    change = plan(later, observed, at("12:00"), POLICY).scaled_object
    assert change is not None
    assert change.action == "update"
    assert change.body["spec"]["triggers"][1] == cron(0, "55 7 * * *", "0 9 * * *", 2)


def test_keda_with_the_skip_annotation_says_nothing_carries_the_windows() -> None:
    doc_so = httpso(MORNING)
    skipped = dataclasses.replace(
        doc_so,
        meta=dataclasses.replace(
            doc_so.meta,
            annotations={"httpscaledobject.keda.sh/skip-scaledobject-creation": "true"},
        ),
    )
    p = plan(skipped, Observed("keda", workload=0, services=SERVICES), at("12:00"), POLICY)
    assert p.scaled_object is None
    assert conditions(p)["WarmWindows"][:2] == ("False", "ScaledObjectSkipped")
