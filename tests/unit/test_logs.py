"""JSON log lines and structured events."""

from __future__ import annotations

import json
import logging

import pytest

from wakeway.model.logs import JsonFormatter, configure, event

pytestmark = pytest.mark.unit


def record(msg: str, *args: object, extra: dict[str, object] | None = None) -> logging.LogRecord:
    logger = logging.getLogger("wakeway.test")
    rec = logger.makeRecord("wakeway.test", logging.INFO, __file__, 1, msg, args, None)
    for key, value in (extra or {}).items():
        setattr(rec, key, value)
    return rec


def test_an_event_carries_its_name_fields_and_monotonic_time() -> None:
    extra = event("woken", target="ns/app", replicas=1, write_ms=2.5)
    doc = json.loads(JsonFormatter().format(record("%s: woke", "ns/app", extra=extra)))
    assert doc["message"] == "ns/app: woke"
    assert doc["level"] == "INFO"
    assert doc["logger"] == "wakeway.test"
    assert doc["event"] == "woken"
    assert doc["target"] == "ns/app"
    assert doc["replicas"] == 1
    assert doc["write_ms"] == 2.5
    assert doc["mono"] == pytest.approx(extra["mono"], abs=1e-6)


def test_a_plain_record_is_json_without_event_fields() -> None:
    doc = json.loads(JsonFormatter().format(record("plain %d", 3)))
    assert doc["message"] == "plain 3"
    assert "event" not in doc
    assert "mono" not in doc


def test_fields_never_overwrite_the_envelope() -> None:
    extra = event("x", message="spoofed", level="ERROR")
    doc = json.loads(JsonFormatter().format(record("real", extra=extra)))
    assert doc["message"] == "real"
    assert doc["level"] == "INFO"


def test_configure_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="log format: must be one of text, json"):
        configure("INFO", "yaml")
