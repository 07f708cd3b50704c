"""How the commands print: kubectl-style tables, or the same records as JSON or YAML (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from wakeway.model.objectstatus import ObjectStatus
from wakeway.routing.explain import Candidate, Explanation, explanation_json

FORMATS = ("table", "json", "yaml")


def dump(doc: Any, fmt: str) -> str:
    """``doc`` as JSON (indented) or YAML (block style, keys in order)."""
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart, as kubectl prints them."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *rows)
    ]
    return "\n".join(lines) + "\n"


def _cell(value: int | str | None) -> str:
    return "-" if value is None else str(value)


STATUS_COLUMNS = (
    "NAME",
    "STATE",
    "REPLICAS",
    "IN-FLIGHT",
    "HELD",
    "ROUTES",
    "LAST-WAKE",
    "LAST-SLEEP",
)


def render_status(items: Sequence[ObjectStatus], fmt: str, *, namespaces: bool) -> str:
    """``namespaces``: a NAMESPACE column (``-A``). REPLICAS is ready/desired; ROUTES is
    bound/declared ``spec.routes``; ``-`` where the mode cannot know."""
    if fmt != "table":
        return dump({"items": [s.to_json() for s in items]}, fmt)
    if not items:
        return ""
    rows = []
    for s in items:
        replicas = "-" if s.replicas is None else f"{_cell(s.ready)}/{s.replicas}"
        row = [
            s.name,
            s.state,
            replicas,
            _cell(s.in_flight),
            _cell(s.held),
            f"{s.routes_bound}/{s.routes}",
            _cell(s.last_wake),
            _cell(s.last_sleep),
        ]
        rows.append([s.namespace, *row] if namespaces else row)
    header = ["NAMESPACE", *STATUS_COLUMNS] if namespaces else list(STATUS_COLUMNS)
    return table(header, rows)


def render_explanation(e: Explanation, fmt: str) -> str:
    if fmt != "table":
        return dump(explanation_json(e), fmt)
    lines = [f"request: {e.method} {e.host}{e.path}"]
    if e.winner is None:
        lines.append("goes to: nothing (the interceptor answers 404)")
    else:
        lines.append(f"goes to: {e.winner.target}")
        lines.append(f"  via {e.winner.claim}")
        lines.append(f"  because {e.winner.reason}")
    if e.candidates:
        lines.append("not chosen:")
        lines.extend(_why_not(c) for c in e.candidates)
    return "\n".join(lines) + "\n"


def _why_not(c: Candidate) -> str:
    return f"  {c.target}: {c.claim}: {c.verdict}: {c.reason}"
