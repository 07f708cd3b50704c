"""The operator's pure core: ``plan(spec, observed, now) -> Plan``.

``plan`` takes an HTTPScaledObject (or the reason it did not parse), what the reconcile shell
observed (the workload's /scale, the namespace's Services, route binding problems, the KEDA
ScaledObject, the scaler's activity) and the time, and returns effects as data: the status to
write (None when it would not change), the ScaledObject to create, update or delete, the
replicas to set, the Events to record and when to look again. The shell applies them in that
order and does nothing else; a steady state plans no writes at all.

Kept as one module (a little under 500 lines) because every part of the status — conditions,
routes, conflicts, the KEDA ScaledObject, standalone scaling — is decided from the same
observation in one pass, and reads best beside the others.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from wakeway.model.conditions import (
    EXTERNAL_NAME_SERVICE,
    PORT_NOT_FOUND,
    SERVICE_NOT_FOUND,
    Condition,
    ConditionStatus,
    merge_conditions,
    parse_conditions,
)
from wakeway.model.errors import ModelError
from wakeway.model.httpso import HTTPScaledObject, PortRef
from wakeway.model.meta import ObjectMeta
from wakeway.model.service import Service
from wakeway.model.warm import Warmth, warmth
from wakeway.operator import scaledobject, warm
from wakeway.operator.objects import ScaledObjectView
from wakeway.operator.scaling import (
    Activity,
    Recommendation,
    decide,
    earliest,
    woken_message,
)
from wakeway.operator.status import ConflictStatus, RouteStatus, Status, WarmWindowStatus
from wakeway.routing import BindingProblem, Conflict

Mode = Literal["keda", "standalone"]

READY = "Ready"
BOUND = "Bound"
ACTIVE = "Active"
MAINTENANCE = "Maintenance"
MAINTENANCE_MESSAGE = (
    "every request is answered with spec.maintenance.response; nothing is woken or forwarded"
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with the spec that the API server could not see; ``reason`` is CamelCase."""

    reason: str
    message: str
    field: str = ""  # the spec field it is about ("spec.scaleTargetRef"), when one is


@dataclass(frozen=True, slots=True)
class InvalidSpec:
    """An HTTPScaledObject the model rejected (the CRD schema accepted it)."""

    meta: ObjectMeta
    error: ModelError


@dataclass(frozen=True, slots=True)
class Observed:
    mode: Mode
    # What the workload's /scale says (spec.replicas), or why it cannot be scaled.
    workload: int | Problem = 0
    # The object's current status, as read (to write only what changed).
    status: Mapping[str, Any] = field(default_factory=dict)
    # Services of the object's namespace, by name.
    services: Mapping[str, Service] = field(default_factory=dict)
    problems: tuple[BindingProblem, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    # The x-wakeway-route value each bound route must stamp, by route key (identity on).
    identities: Mapping[str, str] = field(default_factory=dict)
    # keda: the ScaledObject of the object's name, if any.
    scaled_object: ScaledObjectView | None = None
    # standalone: what the scaler says, and the scale-down stabilisation memory.
    activity: Activity | None = None
    history: tuple[Recommendation, ...] = ()
    # standalone: when the wake fast path scaled the workload from zero since the last pass
    # (the controller's write; its Event and lastScaleTime are this plan's).
    woken_at: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    scaler_address: str = "wakeway-scaler.wakeway.svc:9091"
    stabilization: float = 300.0
    # Workloads are not watched (only /scale is readable): how soon to look again at a missing
    # or unusable one, so a re-created workload is seen (and served) within seconds.
    workload_recheck: float = 2.0
    # Standalone: Active stays True this long after the scaler last said active, so bursts of
    # traffic do not write status each time (a flip costs every interceptor an event).
    active_hold: float = 30.0


@dataclass(frozen=True, slots=True)
class Event:
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclass(frozen=True, slots=True)
class ScaledObjectChange:
    action: Literal["create", "update", "delete"]
    name: str
    body: Mapping[str, Any] = field(default_factory=dict)  # create: object; update: merge patch


@dataclass(frozen=True, slots=True)
class Plan:
    status: Status | None = None  # only when it differs from what is stored
    scaled_object: ScaledObjectChange | None = None
    scale: int | None = None
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None
    history: tuple[Recommendation, ...] = ()
    # standalone: valid and left at zero replicas, so the next turn to active may scale it from
    # zero directly (``max(1, min)``) without waiting for a pass.
    wake_to: int | None = None

    @property
    def writes(self) -> bool:
        return bool(
            self.status is not None
            or self.scaled_object is not None
            or self.scale is not None
            or self.events
        )


def timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def plan(
    spec: HTTPScaledObject | InvalidSpec,
    observed: Observed,
    now: float,
    policy: Policy | None = None,
) -> Plan:
    policy = policy or Policy()
    if isinstance(spec, InvalidSpec):
        return _plan_invalid(spec, observed, now)
    gen = spec.meta.generation
    problems = [*_workload_problems(observed), *service_problems(spec, observed.services)]
    target_workload: str | None = None
    if isinstance(observed.workload, int):
        target = spec.scale_target
        target_workload = f"{target.api_version}/{target.kind}/{target.name}"
    target_service: str | None = None
    if not any(p.field == "spec.scaleTargetRef" for p in problems):
        target_service = spec.backend.describe()
    scaled_object: str | None = None
    last_scale_time: str | None = None

    windows = warmth(spec.warm_windows, now) if spec.warm_windows else None
    so_change: ScaledObjectChange | None = None
    scale: int | None = None
    events: tuple[Event, ...] = ()
    requeue: float | None = None
    wake_to: int | None = None
    history = observed.history
    replicas = observed.workload if isinstance(observed.workload, int) else None

    if observed.mode == "keda":
        so_problem, so_change, active = _keda(spec, observed, problems, policy)
        ready_reason = "ScaledObjectSkipped" if spec.skip_scaledobject else "Ready"
        if so_problem is not None:
            problems.append(so_problem)
        current_so = observed.scaled_object
        if (so_change is not None and so_change.action != "delete") or (
            current_so is not None and current_so.owned_by(spec.meta.uid) and so_change is None
        ):
            scaled_object = spec.name
    else:
        ready_reason = "Ready"
        active, active_recheck = _standalone_active(observed.activity, now, policy.active_hold)
        floor = None if windows is None else warm.floor_of(windows, timestamp)
        if not problems and replicas is not None and observed.activity is not None:
            decision = decide(
                spec, replicas, observed.activity, history, now, policy.stabilization, floor
            )
            history = decision.history
            requeue = decision.recheck_after
            if decision.replicas is not None and decision.replicas != replicas:
                scale = decision.replicas
                events = (Event(decision.reason, decision.message),)
                replicas = scale
            elif observed.woken_at is not None and replicas:
                events = (Event("Woken", woken_message(replicas)),)
            if replicas == 0:
                wake_to = max(1, spec.min_replicas, floor.replicas if floor else 0)
        requeue = earliest(requeue, active_recheck)
        last_scale = observed.status.get("lastScaleTime")
        if scale is not None:
            last_scale_time = timestamp(now)
        elif observed.woken_at is not None:
            last_scale_time = timestamp(observed.woken_at)
        elif isinstance(last_scale, str) and last_scale:
            last_scale_time = last_scale

    if isinstance(observed.workload, Problem):
        requeue = min(requeue or policy.workload_recheck, policy.workload_recheck)

    if problems:
        ready = _cond(
            READY, "False", problems[0].reason, "; ".join(p.message for p in problems), gen
        )
    else:
        message = (
            "the ScaledObject is generated; KEDA scales the workload"
            if observed.mode == "keda"
            else "the operator scales the workload"
        )
        if ready_reason == "ScaledObjectSkipped":
            message = "ScaledObject creation is skipped by annotation; the workload is valid"
        ready = _cond(READY, "True", ready_reason, message, gen)
    conditions: tuple[Condition, ...] = (
        ready,
        _bound(spec, observed, gen),
        _cond(ACTIVE, *active, generation=gen),
    )
    next_window: WarmWindowStatus | None = None
    if windows is not None:
        requeue = earliest(requeue, _until(windows, now))
        if windows.current is not None:
            next_window = warm.status_entry(windows.current, timestamp)
        unexpressed = warm.cron_triggers(spec)[1] if observed.mode == "keda" else []
        state = warm.condition(spec, observed.mode, unexpressed)
        conditions += (_cond(warm.WARM_WINDOWS, *state, generation=gen),)
    if spec.maintenance.enabled:
        conditions += (_cond(MAINTENANCE, "True", "Enabled", MAINTENANCE_MESSAGE, gen),)
    status = Status(
        observed_generation=gen,
        mode=observed.mode,
        conditions=_merged(observed.status, conditions, now),
        target_workload=target_workload,
        target_service=target_service,
        scaled_object=scaled_object,
        last_scale_time=last_scale_time,
        replicas=replicas,
        next_warm_window=next_window,
        routes=_routes(spec, observed),
        conflicts=_conflicts(spec, observed),
    )
    return Plan(
        status=None if _same(status, observed.status) else status,
        scaled_object=so_change,
        scale=scale,
        events=events,
        requeue_after=requeue,
        history=history,
        wake_to=wake_to,
    )


def plan_removal(key: str, current: ScaledObjectView | None) -> Plan:
    """The HTTPScaledObject ``key`` is gone: delete the ScaledObject it controlled, if any.
    (The garbage collector would too; deleting at once also covers an orphaning delete.)
    The workload is left as it is."""
    if current is not None and _created_by_us(current, key.partition("/")[2]):
        return Plan(scaled_object=ScaledObjectChange("delete", current.meta.name))
    return Plan()


def _created_by_us(so: ScaledObjectView, name: str) -> bool:
    return (
        so.controller_kind == "HTTPScaledObject"
        and so.labels.get(scaledobject.MANAGED_BY_LABEL) == scaledobject.MANAGED_BY
        and so.labels.get(scaledobject.HTTPSO_LABEL) == name
    )


# --- validation ---------------------------------------------------------------------------------


def _workload_problems(observed: Observed) -> list[Problem]:
    return [observed.workload] if isinstance(observed.workload, Problem) else []


# Where a target's Service and its failover's are named, and the reason prefix of the latter:
# an HTTPScaledObject's fields (an InterceptorRoute's are in wakeway.operator.routestatus).
HTTPSO_BACKEND_FIELDS = ("scaleTargetRef", "Failover", "coldStartTimeoutFailoverRef")


def service_problems(
    spec: HTTPScaledObject,
    services: Mapping[str, Service],
    fields: tuple[str, str, str] = HTTPSO_BACKEND_FIELDS,
) -> list[Problem]:
    """What is wrong with the Service (and port) ``spec`` forwards to, and its failover's."""
    backend_field, failover_prefix, failover_field = fields
    out = _port_problems(spec.backend, services, "", backend_field)
    if spec.failover is not None:
        out += _port_problems(spec.failover.backend, services, failover_prefix, failover_field)
    return out


def _port_problems(
    ref: PortRef, services: Mapping[str, Service], prefix: str, field_name: str
) -> list[Problem]:
    svc = services.get(ref.service)
    where = f"spec.{field_name}"
    if svc is None:
        message = f"{where}: Service {ref.service} not found"
        return [Problem(prefix + SERVICE_NOT_FOUND, message, where)]
    if svc.type == "ExternalName":
        return [
            Problem(
                prefix + EXTERNAL_NAME_SERVICE,
                f"{where}: Service {ref.service} is of type ExternalName, which is never "
                "followed as a backend",
                where,
            )
        ]
    if ref.port_name is not None and not any(p.name == ref.port_name for p in svc.ports):
        names = ", ".join(p.name for p in svc.ports if p.name) or "none"
        return [
            Problem(
                prefix + PORT_NOT_FOUND,
                f"{where}.portName: Service {ref.service} has no port named "
                f"{ref.port_name!r} (named ports: {names})",
                where,
            )
        ]
    if ref.port is not None and not any(p.port == ref.port for p in svc.ports):
        ports = ", ".join(str(p.port) for p in svc.ports) or "none"
        return [
            Problem(
                prefix + PORT_NOT_FOUND,
                f"{where}.port: Service {ref.service} has no port {ref.port} (ports: {ports})",
                where,
            )
        ]
    return []


# --- KEDA mode ----------------------------------------------------------------------------------


def _keda(
    spec: HTTPScaledObject, observed: Observed, problems: list[Problem], policy: Policy
) -> tuple[Problem | None, ScaledObjectChange | None, tuple[ConditionStatus, str, str]]:
    """(a problem, the ScaledObject change, the Active condition)."""
    current = observed.scaled_object
    owned = current is not None and current.owned_by(spec.meta.uid)
    if spec.skip_scaledobject:
        return (
            None,
            ScaledObjectChange("delete", spec.name) if owned else None,
            ("Unknown", "ScaledObjectSkipped", "ScaledObject creation is skipped by annotation"),
        )
    if current is not None and not owned:
        problem = Problem(
            "ScaledObjectNotOwned",
            f"a ScaledObject named {spec.name} exists and is not controlled by this "
            "HTTPScaledObject; delete it, or set the skip-scaledobject-creation annotation",
        )
        return problem, None, _keda_active(None)
    change: ScaledObjectChange | None = None
    if not problems:
        if current is None:
            change = ScaledObjectChange(
                "create", spec.name, scaledobject.build(spec, policy.scaler_address)
            )
        elif scaledobject.differs(current, spec, policy.scaler_address):
            patch = {
                "metadata": {"labels": scaledobject.desired_labels(spec)},
                "spec": scaledobject.desired_spec(spec, policy.scaler_address),
            }
            change = ScaledObjectChange("update", spec.name, patch)
    return None, change, _keda_active(current)


def _keda_active(current: ScaledObjectView | None) -> tuple[ConditionStatus, str, str]:
    if current is not None:
        for cond in current.conditions:
            if cond.type == "Active" and cond.status != "Unknown":
                return cond.status, cond.reason or "KEDA", cond.message or "as KEDA reports"
    return "Unknown", "AwaitingKEDA", "KEDA has not reported on the ScaledObject yet"


# --- standalone mode ----------------------------------------------------------------------------


def _standalone_active(
    activity: Activity | None, now: float, hold: float
) -> tuple[tuple[ConditionStatus, str, str], float | None]:
    """The Active condition, and when time alone turns it False. It turns True at once and
    False only ``hold`` seconds after the scaler last said active (hysteresis: a status write
    per burst would make every interceptor process an event per burst)."""
    if activity is None or not activity.connected:
        return (
            "Unknown",
            "ScalerUnavailable",
            "no answer from the scaler's StreamIsActive yet",
        ), None
    message = f"the scaler reported requests for this object within the last {hold:g}s"
    if activity.active:
        return ("True", "RequestsActive", message), None
    last = activity.last_active
    if last is not None and now - last < hold:
        return ("True", "RequestsActive", message), last + hold - now
    return ("False", "Idle", f"the scaler reported no requests for {hold:g}s"), None


def _until(windows: Warmth, now: float) -> float | None:
    """How soon a window opens or closes (the floor or status.nextWarmWindow changes)."""
    return None if windows.next_change is None else max(0.0, windows.next_change - now)


# --- routes and conditions ----------------------------------------------------------------------


def _bound(spec: HTTPScaledObject, observed: Observed, gen: int) -> Condition:
    if not spec.routes:
        return _cond(BOUND, "True", "NoRoutes", "spec.routes is empty", gen)
    lost = [c for c in observed.conflicts if c.source == "HTTPRoute" and c.loser == spec.key]
    messages = [p.message for p in observed.problems] + [c.message for c in lost]
    if observed.problems:
        return _cond(BOUND, "False", observed.problems[0].reason, "; ".join(messages), gen)
    if lost:
        return _cond(BOUND, "False", "RuleConflict", "; ".join(messages), gen)
    count = len(spec.routes)
    return _cond(BOUND, "True", "RoutesBound", f"{count} route binding(s) carry traffic", gen)


def _routes(spec: HTTPScaledObject, observed: Observed) -> tuple[RouteStatus, ...]:
    out: list[RouteStatus] = []
    for binding in spec.routes:
        problem = next(
            (
                p
                for p in observed.problems
                if p.route == binding.route_key
                and (binding.rule_name is None or p.rule in (None, binding.rule_name))
            ),
            None,
        )
        lost = next(
            (c for c in observed.conflicts if c.route == binding.route_key and c.loser == spec.key),
            None,
        )
        # The identity goes only where the binding holds its rules (observed.identities has
        # only routes this object owns a rule of); a rule not stamping it yet needs the value.
        identity = observed.identities.get(binding.route_key)
        stampable = problem is None or problem.reason == "IdentityNotStamped"
        if lost is not None or not stampable:
            identity = None
        entry = RouteStatus(binding.namespace, binding.name, binding.rule_name, identity=identity)
        if problem is not None:
            entry = replace(entry, bound=False, reason=problem.reason, message=problem.message)
        elif lost is not None:
            entry = replace(entry, bound=False, reason="RuleConflict", message=lost.message)
        out.append(entry)
    return tuple(out)


def _conflicts(spec: HTTPScaledObject, observed: Observed) -> tuple[ConflictStatus, ...]:
    out = []
    for c in observed.conflicts:
        if c.loser == spec.key:
            namespace, _, name = c.winner.partition("/")
            out.append(ConflictStatus(namespace, name, c.message))
    return tuple(out)


def _cond(
    type_: str, status: ConditionStatus, reason: str, message: str, generation: int
) -> Condition:
    return Condition(type_, status, reason, message[:32768], generation)


def _merged(
    current: Mapping[str, Any], desired: Iterable[Condition], now: float
) -> tuple[Condition, ...]:
    return merge_conditions(parse_conditions(current.get("conditions")), desired, timestamp(now))


def _same(desired: Status, current: Mapping[str, Any]) -> bool:
    return desired.to_json() == dict(current)


def _plan_invalid(spec: InvalidSpec, observed: Observed, now: float) -> Plan:
    gen = spec.meta.generation
    conditions = (
        _cond(READY, "False", "InvalidSpec", spec.error.summary(), gen),
        _cond(BOUND, "Unknown", "InvalidSpec", "the spec could not be read", gen),
        _cond(ACTIVE, "Unknown", "InvalidSpec", "the spec could not be read", gen),
    )
    status = Status(gen, observed.mode, _merged(observed.status, conditions, now))
    return Plan(status=None if _same(status, observed.status) else status)
