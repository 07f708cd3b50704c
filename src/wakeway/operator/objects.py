"""The operator's typed views of what it watches, with the parsers its informers use.

Only the fields the operator decides on are kept; each parser raises
:class:`~wakeway.model.errors.ModelError` naming the field, like the model's parsers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wakeway.model import fields as f
from wakeway.model.conditions import Condition, parse_conditions
from wakeway.model.httpso import KIND, HTTPScaledObject, parse_httpscaledobject
from wakeway.model.meta import ObjectMeta, parse_meta


@dataclass(frozen=True, slots=True)
class Tracked:
    """An HTTPScaledObject and the status it currently carries (to write only what changed)."""

    httpso: HTTPScaledObject
    status: Mapping[str, Any] = field(default_factory=dict)


def parse_tracked(doc: Mapping[str, Any]) -> Tracked:
    status = doc.get("status")
    return Tracked(parse_httpscaledobject(doc), dict(status) if isinstance(status, dict) else {})


@dataclass(frozen=True, slots=True)
class ScaledObjectView:
    """A KEDA ScaledObject as the operator sees it."""

    meta: ObjectMeta
    controller_uid: str  # uid of its controlling owner; "" when none
    controller_kind: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str]
    conditions: tuple[Condition, ...] = ()

    def owned_by(self, uid: str) -> bool:
        return bool(uid) and self.controller_kind == KIND and self.controller_uid == uid


def parse_scaled_object(doc: Mapping[str, Any]) -> ScaledObjectView:
    meta = parse_meta(doc, "")
    uid, kind = "", ""
    for i, raw in enumerate(f.opt_list(f.req_mapping(doc, "metadata", ""), "ownerReferences", "")):
        ref = f.mapping(raw, f"metadata.ownerReferences[{i}]")
        if ref.get("controller") is True:
            uid, kind = str(ref.get("uid") or ""), str(ref.get("kind") or "")
    spec = f.opt_mapping(doc, "spec", "") or {}
    conditions = parse_conditions((doc.get("status") or {}).get("conditions"))
    return ScaledObjectView(meta, uid, kind, dict(spec), dict(meta.labels), conditions)
