"""Conditional JSON Patches under a named field manager, and who manages a field.

For edits inside lists the CRD declares atomic (where server-side apply would take over the
whole list): the patch changes only the elements it names, and its first operation tests
``metadata.resourceVersion``, so it applies to exactly the version it was planned from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from wakeway.kube.client import JSON, JSON_PATCH, Kube
from wakeway.kube.resources import Resource


async def conditional_json_patch(
    kube: Kube,
    resource: Resource,
    namespace: str,
    name: str,
    ops: Sequence[Mapping[str, Any]],
    *,
    resource_version: str,
    field_manager: str,
) -> JSON:
    """Apply ``ops`` if the object is still at ``resource_version``; otherwise the API server
    refuses the whole patch (a :class:`~wakeway.kube.errors.KubeError`, nothing written)."""
    test = {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version}
    doc: JSON = await kube.request(
        "PATCH",
        resource.path(namespace, name),
        query={"fieldManager": field_manager},
        body=[test, *ops],
        content_type=JSON_PATCH,
    )
    return doc


def field_managers(doc: Mapping[str, Any], *path: str) -> frozenset[str]:
    """The managers that own the field at ``path`` (e.g. ``"spec", "rules"``) of the object
    itself (not a subresource), by its ``metadata.managedFields``."""
    out: set[str] = set()
    for entry in (doc.get("metadata") or {}).get("managedFields") or ():
        if entry.get("subresource"):
            continue
        fields: Any = entry.get("fieldsV1") or {}
        for part in path:
            fields = fields.get(f"f:{part}") if isinstance(fields, dict) else None
        if fields is not None:
            out.add(str(entry.get("manager", "")))
    return frozenset(out)
