"""The KEDA ScaledObject generated for an HTTPScaledObject (pure).

One ``keda.sh/v1alpha1`` ScaledObject per HTTPScaledObject, of the same name and namespace,
controlled by it (ownerReferences, so the garbage collector removes it with its owner). It has
one ``external-push`` trigger: KEDA opens StreamIsActive to ``scalerAddress`` and wakes the
workload the moment the scaler says active, then asks GetMetrics for 1 -> N; and one ``cron``
trigger per warm window (see :mod:`wakeway.operator.warm`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wakeway.model.httpso import API_VERSION, KIND, HTTPScaledObject
from wakeway.model.trigger import scaler_metadata
from wakeway.operator.objects import ScaledObjectView
from wakeway.operator.warm import cron_triggers

SO_API_VERSION = "keda.sh/v1alpha1"
SO_KIND = "ScaledObject"
TRIGGER_TYPE = "external-push"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "wakeway-operator"
HTTPSO_LABEL = "http.keda.sh/httpscaledobject"


def desired_spec(httpso: HTTPScaledObject, scaler_address: str) -> dict[str, Any]:
    target = httpso.scale_target
    metadata = {"scalerAddress": scaler_address, **scaler_metadata(httpso)}
    return {
        "scaleTargetRef": {
            "apiVersion": target.api_version,
            "kind": target.kind,
            "name": target.name,
        },
        "minReplicaCount": httpso.min_replicas,
        "maxReplicaCount": httpso.max_replicas,
        "cooldownPeriod": httpso.scaledown_period,
        "initialCooldownPeriod": httpso.initial_cooldown_period,
        "triggers": [
            {"type": TRIGGER_TYPE, "name": "http", "metadata": metadata},
            *cron_triggers(httpso)[0],
        ],
    }


def desired_labels(httpso: HTTPScaledObject) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, HTTPSO_LABEL: httpso.name}


def owner_reference(httpso: HTTPScaledObject) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": httpso.name,
        "uid": httpso.meta.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build(httpso: HTTPScaledObject, scaler_address: str) -> dict[str, Any]:
    """The whole ScaledObject to create."""
    return {
        "apiVersion": SO_API_VERSION,
        "kind": SO_KIND,
        "metadata": {
            "name": httpso.name,
            "namespace": httpso.namespace,
            "labels": desired_labels(httpso),
            "ownerReferences": [owner_reference(httpso)],
        },
        "spec": desired_spec(httpso, scaler_address),
    }


def differs(current: ScaledObjectView, httpso: HTTPScaledObject, scaler_address: str) -> bool:
    """Whether ``current`` needs an update: our fields of its spec, or our labels, differ.

    Fields we do not set (KEDA's defaults, ``advanced``...) are not compared, so a defaulting
    API server or a user's addition does not cause an update loop; the triggers are ours
    entirely. The update is a merge patch of our fields (lists are replaced whole).
    """
    want = desired_spec(httpso, scaler_address)
    if current.spec.get("triggers") != want.pop("triggers"):
        return True  # compared whole: a stale metadata key must go too
    if not _contains(current.spec, want):
        return True
    return any(current.labels.get(k) != v for k, v in desired_labels(httpso).items())


def _contains(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            _contains(actual.get(k), v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(wanted)
            and all(_contains(a, w) for a, w in zip(actual, wanted, strict=True))
        )
    return bool(actual == wanted)
