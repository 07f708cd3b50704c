"""The trigger metadata that tells the scaler which HTTPScaledObject, and which metric, is meant.

KEDA passes a trigger's metadata back to the scaler on every call as ``scalerMetadata``; in
standalone mode the operator sends the same map itself. The keys are the scaler's contract
(see the README's "Scaler" section): ``httpScaledObject``, ``namespace``, ``metric``,
``targetValue`` and, for ``requestRate``, ``window`` and ``granularity`` (durations in seconds,
written ``60s``). Components may not import each other, so the operator spells the keys here;
a unit test checks this map against the scaler's parser.
"""

from __future__ import annotations

from wakeway.model.httpso import HTTPScaledObject

KEY_HTTPSO = "httpScaledObject"
KEY_NAMESPACE = "namespace"
KEY_METRIC = "metric"
KEY_TARGET_VALUE = "targetValue"
KEY_WINDOW = "window"
KEY_GRANULARITY = "granularity"


def scaler_metadata(httpso: HTTPScaledObject) -> dict[str, str]:
    """The map that names ``httpso`` and its metric to the scaler."""
    metric = httpso.scaling_metric
    out = {
        KEY_HTTPSO: httpso.name,
        KEY_NAMESPACE: httpso.namespace,
        KEY_METRIC: metric.kind,
        KEY_TARGET_VALUE: _number(metric.target_value),
    }
    if metric.kind == "requestRate":
        out[KEY_WINDOW] = f"{_number(metric.window)}s"
        out[KEY_GRANULARITY] = f"{_number(metric.granularity)}s"
    return out


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
