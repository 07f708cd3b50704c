"""When a status says requests cannot be served (wakeway.model.conditions.unservable)."""

from __future__ import annotations

import pytest

from wakeway.model.conditions import Condition, ConditionStatus, unservable

pytestmark = pytest.mark.unit


def ready(status: ConditionStatus, reason: str, generation: int = 3) -> Condition:
    return Condition("Ready", status, reason, f"{reason}: details", generation)


@pytest.mark.parametrize(
    ("conditions", "generation", "answer"),
    [
        pytest.param([ready("False", "WorkloadNotFound")], 3, "WorkloadNotFound", id="gone"),
        pytest.param([ready("False", "ServiceNotFound")], 3, "ServiceNotFound", id="no service"),
        pytest.param([ready("False", "NoScaleSubresource")], 3, "NoScaleSubresource", id="kind"),
        pytest.param([ready("False", "WorkloadNotFound", 2)], 3, None, id="an older generation"),
        pytest.param([ready("True", "Ready")], 3, None, id="ready"),
        pytest.param([ready("False", "ScaledObjectNotOwned")], 3, None, id="KEDA may still"),
        pytest.param([ready("False", "FailoverServiceNotFound")], 3, None, id="failover only"),
        pytest.param(
            [Condition("Bound", "False", "WorkloadNotFound", "", 3)], 3, None, id="not Ready"
        ),
        pytest.param([], 3, None, id="no status yet"),
    ],
)
def test_unservable_only_for_this_generations_missing_backend(
    conditions: list[Condition], generation: int, answer: str | None
) -> None:
    found = unservable(conditions, generation)
    assert (None if found is None else found.reason) == answer
