"""An InterceptorRoute's status, planned purely: its ``Ready`` condition and nothing else.

The route's ScaledObject is the user's own (its ``external-push`` trigger names the route), so
the operator creates, scales and watches nothing for it: it checks what the CRD cannot (the
spec as the model reads it, the Service and port it forwards to, the fallback's) and says so in
``Ready``, as the add-on does (True, reason ``Reconciled``), or False with the reason and a
message naming the field. The interceptor reads a False ``ServiceNotFound``/``PortNotFound``/
``ExternalNameService`` as "answer at once" (:func:`~wakeway.model.conditions.unservable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wakeway.model.conditions import Condition, merge_conditions, parse_conditions
from wakeway.model.httpso import HTTPScaledObject
from wakeway.model.service import Service
from wakeway.operator.plan import InvalidSpec, service_problems, timestamp

READY = "Ready"
RECONCILED = "Reconciled"
INVALID_SPEC = "InvalidSpec"


ROUTE_BACKEND_FIELDS = ("target", "Fallback", "coldStart.fallback.service")


def plan_route_status(
    route: HTTPScaledObject | InvalidSpec,
    services: Mapping[str, Service],
    current: Mapping[str, Any],
    now: float,
) -> dict[str, Any] | None:
    """The status to write, or None when ``current`` already is it."""
    if isinstance(route, InvalidSpec):
        gen = route.meta.generation
        ready = Condition(READY, "False", INVALID_SPEC, route.error.summary()[:32768], gen)
    else:
        gen = route.meta.generation
        problems = service_problems(route, services, ROUTE_BACKEND_FIELDS)
        if problems:
            first = problems[0]
            text = "; ".join(p.message for p in problems)[:32768]
            ready = Condition(READY, "False", first.reason, text, gen)
        else:
            ready = Condition(
                READY,
                "True",
                RECONCILED,
                "InterceptorRoute reconciled: routed by the interceptor; scaled by the "
                "ScaledObject whose external-push trigger names it",
                gen,
            )
    merged = merge_conditions(parse_conditions(current.get("conditions")), [ready], timestamp(now))
    desired = {**current, "conditions": [c.to_json() for c in merged]}
    return None if desired == dict(current) else desired
