"""Reading a component's settings dataclass from environment variables, once, the same way
for every component: ``<PREFIX><FIELD>`` per field, errors naming the variable."""

from __future__ import annotations

import base64
import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

S = TypeVar("S")

ROUTE_IDENTITY_KEY = "WAKEWAY_ROUTE_IDENTITY_KEY"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def settings_from_env(
    base: S,
    prefix: str,
    env: Mapping[str, str],
    *,
    aliases: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> S:
    """``base`` with every field that has a ``<prefix><FIELD>`` variable replaced.

    ``aliases`` maps more variable names to fields (shared spellings, read first, so the
    prefixed name wins); ``extra`` are values already parsed (e.g. a key file). Values are
    converted by the field's type: bool (true/false/1/0/yes/no/on/off), int, float, str, and
    ``X | None`` (``none`` or empty gives None). A malformed value, or one the dataclass's own
    checks refuse, raises ``ValueError`` naming the variable.
    """
    cls = type(base)
    hints = typing.get_type_hints(cls)
    var_of = {f.name: prefix + f.name.upper() for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    changes: dict[str, object] = dict(extra or {})
    sources = [(var, name) for var, name in (aliases or {}).items()]
    sources += [(var, name) for name, var in var_of.items() if name not in (extra or {})]
    for var, name in sources:
        raw = env.get(var)
        if raw is None:
            continue
        try:
            changes[name] = _convert(raw.strip(), hints[name])
        except ValueError as exc:
            raise ValueError(f"{var}: {exc}") from None
        var_of[name] = var
    try:
        return dataclasses.replace(base, **changes)  # type: ignore[type-var]
    except ValueError as exc:
        # The dataclass's checks say "field: why"; say it with the variable's name.
        name, sep, message = str(exc).partition(":")
        if sep and name in var_of:
            raise ValueError(f"{var_of[name]}:{message}") from None
        raise


def route_identity_key(env: Mapping[str, str]) -> bytes | None:
    """The route identity HMAC key: ``WAKEWAY_ROUTE_IDENTITY_KEY`` (base64) or the raw bytes
    of the file ``WAKEWAY_ROUTE_IDENTITY_KEY_FILE`` (a mounted Secret); None when neither."""
    key: bytes | None = None
    if env.get(ROUTE_IDENTITY_KEY):
        try:
            key = base64.b64decode(env[ROUTE_IDENTITY_KEY], validate=True)
        except ValueError:
            raise ValueError(f"{ROUTE_IDENTITY_KEY}: not valid base64") from None
    elif env.get(f"{ROUTE_IDENTITY_KEY}_FILE"):
        path = Path(env[f"{ROUTE_IDENTITY_KEY}_FILE"])
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"{ROUTE_IDENTITY_KEY}_FILE: {path}: {exc.strerror}") from None
    if key is not None and len(key) < 16:
        raise ValueError(f"{ROUTE_IDENTITY_KEY}: must be at least 16 bytes")
    return key


def _convert(value: str, hint: Any) -> object:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value.lower() in ("", "none"):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean")
    if hint is int:
        return int(value)
    if hint is float:
        return float(value)
    if hint is bytes:
        return value.encode()
    return value
