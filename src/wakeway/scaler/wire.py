"""The interceptor's count stream as the scaler reads it (``GET /counts``, NDJSON), parsed here.

One JSON object per line: ``snapshot`` (every target, replaces what was known), ``change`` (only
the targets that changed) and ``heartbeat`` (nothing changed; the stream is alive). Each target
is ``"namespace/name": {"inFlight": int, "held": int, "requests": int, "busy": float}``;
``requests`` and ``busy`` (request-seconds in flight) are monotonic for the life of the
interceptor process (``busy`` absent: 0, as from an interceptor that does not send it). Unknown
fields are ignored, so the interceptor may add some.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["snapshot", "change", "heartbeat"]
_KINDS: frozenset[str] = frozenset(("snapshot", "change", "heartbeat"))


class WireError(ValueError):
    """A line that is not a count-stream item."""


@dataclass(frozen=True, slots=True)
class Counts:
    in_flight: int
    held: int
    requests: int
    busy: float = 0.0


@dataclass(frozen=True, slots=True)
class CountLine:
    kind: Kind
    seq: int
    targets: Mapping[str, Counts] = field(default_factory=dict)
    wake: bool = False


def parse_line(line: bytes | str) -> CountLine:
    """One line of the stream; raises :class:`WireError` saying what is wrong."""
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise WireError("not a JSON object")
    kind = doc.get("type")
    if kind not in _KINDS:
        raise WireError(f"type: unknown {kind!r}")
    seq = _int(doc.get("seq", 0), "seq")
    if kind == "heartbeat":
        return CountLine("heartbeat", seq)
    raw = doc.get("targets")
    if not isinstance(raw, dict):
        raise WireError("targets: must be an object")
    targets = {str(key): _counts(value, key) for key, value in raw.items()}
    return CountLine(kind, seq, targets, doc.get("wake") is True)


def _counts(value: Any, key: str) -> Counts:
    if not isinstance(value, dict):
        raise WireError(f"targets.{key}: must be an object")
    return Counts(
        _int(value.get("inFlight", 0), f"targets.{key}.inFlight"),
        _int(value.get("held", 0), f"targets.{key}.held"),
        _int(value.get("requests", 0), f"targets.{key}.requests"),
        _seconds(value.get("busy", 0.0), f"targets.{key}.busy"),
    )


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireError(f"{path}: must be a non-negative integer, got {value!r}")
    return value


def _seconds(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise WireError(f"{path}: must be a non-negative number of seconds, got {value!r}")
    return float(value)
