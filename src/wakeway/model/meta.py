"""Object metadata shared by every kind we read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wakeway.model import fields as f
from wakeway.model.errors import ModelError


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    namespace: str
    name: str
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    creation_timestamp: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# Every field of Kubernetes' ObjectMeta: one a file may carry, whether or not we read it.
OBJECT_META_FIELDS = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)


def parse_meta(doc: Mapping[str, Any], default_namespace: str) -> ObjectMeta:
    meta = f.req_mapping(doc, "metadata", "")
    f.known(meta, *OBJECT_META_FIELDS)
    name = f.req_str(meta, "name", "metadata")
    namespace = f.opt_str(meta, "namespace", "metadata") or default_namespace
    return ObjectMeta(
        namespace=namespace,
        name=name,
        uid=f.opt_str(meta, "uid", "metadata") or "",
        generation=f.opt_int(meta, "generation", "metadata", 0) or 0,
        resource_version=f.opt_str(meta, "resourceVersion", "metadata") or "",
        creation_timestamp=parse_timestamp(meta.get("creationTimestamp"), "metadata"),
        labels=_string_map(meta, "labels"),
        annotations=_string_map(meta, "annotations"),
    )


def parse_timestamp(value: Any, path: str) -> float:
    """Epoch seconds from an RFC 3339 timestamp; 0.0 when absent (objects read from files).
    The one timestamp parser of the model: RFC 3339 requires a zone (``Z`` or an offset), so a
    timestamp without one is an error, never read as some machine's local time."""
    where = f.join(path, "creationTimestamp")
    if value is None or value == "":
        return 0.0
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)  # reads a "Z" suffix too (Python 3.11)
        except ValueError:
            raise ModelError(where, f"{value!r} is not an RFC 3339 timestamp") from None
    else:
        raise ModelError(where, "must be an RFC 3339 timestamp")
    if parsed.tzinfo is None:
        raise ModelError(where, f"{value!r} has no time zone")
    return parsed.timestamp()


def _string_map(meta: Mapping[str, Any], key: str) -> Mapping[str, str]:
    raw = f.opt_mapping(meta, key, "metadata") or {}
    out: dict[str, str] = {}
    for name, value in raw.items():
        out[str(name)] = f.as_str(value, f"metadata.{key}.{name}")
    return out
