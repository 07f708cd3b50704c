"""Typed readers for raw JSON-like mappings; each error names the field path."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, overload

from wakeway.model.errors import ModelError

Raw = Mapping[str, Any]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def join(path: str, key: str | int) -> str:
    """``join("spec", "hosts") == "spec.hosts"``; ``join("spec.hosts", 2) == "spec.hosts[2]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def mapping(value: Any, path: str) -> Raw:
    if not isinstance(value, Mapping):
        raise ModelError(path, f"must be an object, got {_kind(value)}")
    return value


def opt_mapping(obj: Raw, key: str, path: str) -> Raw | None:
    value = obj.get(key)
    return None if value is None else mapping(value, join(path, key))


def req_mapping(obj: Raw, key: str, path: str) -> Raw:
    value = obj.get(key)
    if value is None:
        raise ModelError(join(path, key), "is required")
    return mapping(value, join(path, key))


def opt_list(obj: Raw, key: str, path: str) -> Sequence[Any]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ModelError(join(path, key), f"must be a list, got {_kind(value)}")
    return value


@overload
def opt_str(obj: Raw, key: str, path: str, default: str) -> str: ...
@overload
def opt_str(obj: Raw, key: str, path: str, default: None = None) -> str | None: ...
def opt_str(obj: Raw, key: str, path: str, default: str | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ModelError(join(path, key), f"must be a string, got {_kind(value)}")
    return value


def req_str(obj: Raw, key: str, path: str) -> str:
    value = opt_str(obj, key, path)
    if value is None or value == "":
        raise ModelError(join(path, key), "is required")
    return value


def as_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ModelError(path, f"must be a string, got {_kind(value)}")
    return value


@overload
def opt_int(
    obj: Raw,
    key: str,
    path: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int: ...
@overload
def opt_int(
    obj: Raw,
    key: str,
    path: str,
    default: None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None: ...
def opt_int(
    obj: Raw,
    key: str,
    path: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(join(path, key), f"must be an integer, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise ModelError(join(path, key), f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ModelError(join(path, key), f"must be at most {maximum}, got {value}")
    return value


@overload
def opt_number(
    obj: Raw, key: str, path: str, default: float, *, minimum: float | None = None
) -> float: ...
@overload
def opt_number(
    obj: Raw, key: str, path: str, default: None = None, *, minimum: float | None = None
) -> float | None: ...
def opt_number(
    obj: Raw, key: str, path: str, default: float | None = None, *, minimum: float | None = None
) -> float | None:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(join(path, key), f"must be a number, got {_kind(value)}")
    if minimum is not None and value < minimum:
        raise ModelError(join(path, key), f"must be at least {minimum}, got {value}")
    return float(value)


def opt_bool(obj: Raw, key: str, path: str, default: bool) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ModelError(join(path, key), f"must be true or false, got {_kind(value)}")
    return value


def parse_duration(value: Any, path: str) -> float:
    """Seconds from a Go-style duration string ("1m30s", "250ms") or a plain number of seconds."""
    if isinstance(value, bool):
        raise ModelError(path, "must be a duration such as 30s, 5m or 1h30m")
    if isinstance(value, int | float):
        if value < 0:
            raise ModelError(path, f"must not be negative, got {value}")
        return float(value)
    if not isinstance(value, str) or not value:
        raise ModelError(path, "must be a duration such as 30s, 5m or 1h30m")
    pos = 0
    total = 0.0
    for part in _DURATION_PART.finditer(value):
        if part.start() != pos:
            break
        total += float(part.group(1)) * _UNITS[part.group(2)]
        pos = part.end()
    if pos != len(value):
        raise ModelError(path, f"{value!r} is not a duration such as 30s, 5m or 1h30m")
    return total


@overload
def opt_duration(obj: Raw, key: str, path: str, default: float) -> float: ...
@overload
def opt_duration(obj: Raw, key: str, path: str, default: None = None) -> float | None: ...
def opt_duration(obj: Raw, key: str, path: str, default: float | None = None) -> float | None:
    value = obj.get(key)
    if value is None:
        return default
    return parse_duration(value, join(path, key))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
