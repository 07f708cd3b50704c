"""The route identity written into an HTTPRoute by the operator (pure): which JSON Patch edits
make the route's bound rules stamp its identity, and which take it out where it no longer
belongs.

A route opts in with the annotation ``wakeway.dev/stamp-identity: "true"``, set by its owner.
Then every rule bound to an HTTPScaledObject sets the header ``x-wakeway-route`` to the route's
identity with a RequestHeaderModifier ``set`` (in the rule's existing RequestHeaderModifier
filter if it has one: the Gateway API allows one per rule). Where the identity no longer belongs
(annotation removed, binding refused or gone, the object deleted), the entries are taken out
again, but only while the operator is the sole manager of ``spec.rules``: that is, while the
rules are exactly what the operator last wrote; once anyone else wrote them, they are theirs.

Why a JSON Patch and not server-side apply: in the Gateway API's CRD ``spec.rules`` and each
rule's ``filters`` are atomic lists (``x-kubernetes-list-type: atomic``), so the API server
tracks ownership of the whole rules list as one field. An apply that adds one filter must send
the whole list; without force it always conflicts with the route's owner (the value differs),
and with force it takes the whole list over on the owner's word. A JSON Patch adds or removes
just the one element and changes no other value, and its ``test`` of ``metadata.resourceVersion``
(added by the adapter) makes it apply to exactly the rules this plan was made from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from wakeway.model.httproute import HTTPRoute, RouteRule
from wakeway.routing.identity import IDENTITY_HEADER

ANNOTATION: Final = "wakeway.dev/stamp-identity"
"""Set to ``"true"`` on an HTTPRoute to have the operator write its identity filter."""
FIELD_MANAGER: Final = "wakeway-operator"
"""The field manager the operator's writes to HTTPRoutes carry."""
HEADER_MODIFIER: Final = "RequestHeaderModifier"


@dataclass(frozen=True, slots=True)
class PatchOp:
    """One JSON Patch operation (RFC 6902) on the HTTPRoute."""

    op: Literal["add", "replace", "remove"]
    path: str
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op != "remove":
            out["value"] = self.value
        return out


def opted_in(route: HTTPRoute) -> bool:
    """Whether the route's owner asked the operator to stamp its identity."""
    return route.annotations.get(ANNOTATION, "").strip().lower() == "true"


def identity_filter(identity: str) -> dict[str, Any]:
    """The rule-level filter that stamps ``identity`` (what a rule carries, in JSON form)."""
    return {
        "type": HEADER_MODIFIER,
        "requestHeaderModifier": {"set": [{"name": IDENTITY_HEADER, "value": identity}]},
    }


def plan_route_filter(
    route: HTTPRoute, bound: frozenset[int], identity: str | None, *, ours: bool
) -> tuple[PatchOp, ...]:
    """The edits that bring ``route`` to: each rule in ``bound`` stamps ``identity`` when the
    route opted in (and there is an identity); every other rule's identity entry removed when
    ``ours`` (the operator is the sole manager of ``spec.rules``), left alone otherwise. No
    edits in the steady state. At most one edit per rule, so the indices stay valid in order."""
    want = identity if identity is not None and opted_in(route) else None
    ops: list[PatchOp] = []
    for index, rule in enumerate(route.rules):
        base = f"/spec/rules/{index}"
        edit = (
            _stamp(rule, base, want)
            if want is not None and index in bound
            else (_unstamp(rule, base) if ours else None)
        )
        if edit is not None:
            ops.append(edit)
    return tuple(ops)


def _modifier_index(rule: RouteRule) -> int | None:
    for j, f in enumerate(rule.filters):
        if f.type == HEADER_MODIFIER and f.request_header_modifier is not None:
            return j
    return None


def _entry_index(names: list[str]) -> int | None:
    for k, name in enumerate(names):
        if name.lower() == IDENTITY_HEADER:
            return k
    return None


def _stamp(rule: RouteRule, base: str, identity: str) -> PatchOp | None:
    j = _modifier_index(rule)
    if j is None:
        if not rule.filters:
            return PatchOp("add", f"{base}/filters", [identity_filter(identity)])
        return PatchOp("add", f"{base}/filters/-", identity_filter(identity))
    modifier = rule.filters[j].request_header_modifier
    assert modifier is not None
    others = [n for n, _ in modifier.add] + list(modifier.remove)
    if _entry_index(others) is not None:
        return None  # the owner adds or removes the header itself: theirs to decide
    where = f"{base}/filters/{j}/requestHeaderModifier/set"
    k = _entry_index([n for n, _ in modifier.set])
    entry = {"name": IDENTITY_HEADER, "value": identity}
    if k is None:
        return (
            PatchOp("add", f"{where}/-", entry) if modifier.set else PatchOp("add", where, [entry])
        )
    if modifier.set[k][1] == identity:
        return None
    return PatchOp("replace", f"{where}/{k}/value", identity)


def _unstamp(rule: RouteRule, base: str) -> PatchOp | None:
    j = _modifier_index(rule)
    if j is None:
        return None
    modifier = rule.filters[j].request_header_modifier
    assert modifier is not None
    k = _entry_index([n for n, _ in modifier.set])
    if k is None:
        return None
    if len(modifier.set) > 1:
        return PatchOp("remove", f"{base}/filters/{j}/requestHeaderModifier/set/{k}")
    if modifier.add or modifier.remove:
        return PatchOp("remove", f"{base}/filters/{j}/requestHeaderModifier/set")
    if len(rule.filters) > 1:
        return PatchOp("remove", f"{base}/filters/{j}")
    return PatchOp("remove", f"{base}/filters")
