"""The operator: reconciles HTTPScaledObjects; wakes and scales workloads.

A pure core (:func:`plan`, :mod:`.scaling`, :mod:`.scaledobject`) decides; a thin shell
(:mod:`.controller`) watches, reconciles keys from a de-duplicating :class:`WorkQueue` and
applies the plans; :mod:`.scalerlink` follows the scaler over gRPC in standalone mode.
"""

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
)
from wakeway.operator.run import run_operator
from wakeway.operator.scaling import Activity, Decision, Recommendation, decide
from wakeway.operator.settings import OperatorSettings, settings_from_env
from wakeway.operator.workqueue import ShutDown, WorkQueue

__all__ = [
    "Activity",
    "Decision",
    "Event",
    "InvalidSpec",
    "Observed",
    "OperatorSettings",
    "Plan",
    "Policy",
    "Problem",
    "Recommendation",
    "ScaledObjectChange",
    "ShutDown",
    "WorkQueue",
    "decide",
    "plan",
    "plan_removal",
    "run_operator",
    "settings_from_env",
]
