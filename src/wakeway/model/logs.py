"""Log lines as JSON (``--log-format json``), and the structured events wakeway emits.

An event is an ordinary log record whose ``extra`` (built by :func:`event`) names it and carries
its fields and a monotonic timestamp. The text format shows only the human message; the JSON
format adds ``event``, ``mono`` and the fields, so a tool reads wake and sleep timings without
parsing prose. ``mono`` is ``time.monotonic()`` when the record was made: one clock for every
process of a machine, so the hops of one wake line up across the interceptor, the scaler and
the operator.

Events: ``cold`` (interceptor: a target's first request held), ``wake-seen`` (scaler: a count
line saying so arrived), ``active`` (operator: the scaler's stream turned active),
``woken`` (operator: the wake write to /scale finished; ``sent`` is when it was sent, on the same
clock), and local mode's ``listening`` (its proxy and admin ports), ``wake`` and ``sleep``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def event(name: str, **fields: Any) -> dict[str, Any]:
    """The ``extra`` of a log call that is also the event ``name`` with ``fields``."""
    return {"event": name, "mono": time.monotonic(), "fields": fields}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and an event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        name = getattr(record, "event", None)
        if isinstance(name, str):
            doc["event"] = name
            doc["mono"] = round(float(getattr(record, "mono", record.created)), 6)
            fields = getattr(record, "fields", None)
            if isinstance(fields, dict):
                doc.update({k: v for k, v in fields.items() if k not in doc})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


def configure(level: str, fmt: str) -> None:
    """The root logger for a wakeway process: ``fmt`` is ``text`` or ``json``."""
    if fmt not in FORMATS:
        raise ValueError(f"log format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
