"""One settings path for every component: a frozen dataclass declares each setting, its default
and its bounds; :func:`settings_from_env` reads ``<PREFIX><FIELD>`` variables into it, once.

A field declared with :func:`setting` carries its bounds (``min``, ``max``, ``above``, ``below``,
``choices``), an optional parser for its variable's text and an optional check of its value;
:func:`check_fields` applies them, so a dataclass built in code is held to the same rules as one
read from the environment. Every problem is a :class:`SettingsError` naming the variable (or the
field, for a dataclass built in code) and what is wrong. An absent value is ``None``: an empty
variable gives ``None`` for an optional field. A ``WAKEWAY_*`` variable that the component does
not read is an error that suggests the closest known name, unless another component's prefix
(:data:`COMPONENT_PREFIXES`) leaves it to that component or it is one of :data:`SHARED_VARIABLES`
and :data:`TOOL_VARIABLES`.

``host:port`` and ``namespace/name[:port]`` are parsed here and nowhere else.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

S = TypeVar("S")
T = TypeVar("T")

ROUTE_IDENTITY_KEY = "WAKEWAY_ROUTE_IDENTITY_KEY"
PREFIX = "WAKEWAY_"
# Each component checks the variables of its own prefix and leaves the others' to them.
COMPONENT_PREFIXES = ("WAKEWAY_INTERCEPTOR_", "WAKEWAY_SCALER_", "WAKEWAY_OPERATOR_")
# Read by more than one component, without a component's prefix (or with the interceptor's).
SHARED_VARIABLES = (
    "WAKEWAY_KUBECONFIG",
    "WAKEWAY_INTERCEPTOR_SERVICE",
    ROUTE_IDENTITY_KEY,
    f"{ROUTE_IDENTITY_KEY}_FILE",
)
# Read by the project's scripts and tests, never by a component; allowed in its environment.
TOOL_VARIABLES = (
    "WAKEWAY_CLUSTER_LOGS",
    "WAKEWAY_FUZZ_EXAMPLES",
    "WAKEWAY_DEMO_LISTEN",
    "WAKEWAY_DEMO_ADMIN",
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingsError(ValueError):
    """A setting that cannot be used: ``str()`` is ``"<variable or field>: <problem>"``."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


# The one address type: (host, port), the host without brackets, also for IPv6. Endpoint views,
# the interceptor's pool and the settings all use it; HostPort is its named form.
Address = tuple[str, int]


def format_address(addr: Address) -> str:
    """``host:port``, with the host in brackets when it is an IPv6 address."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HostPort(NamedTuple):
    host: str  # without brackets, also for IPv6
    port: int

    def __str__(self) -> str:
        return format_address(self)


class ServiceRef(NamedTuple):
    namespace: str
    name: str
    port: int | None  # None: any port of the Service

    def __str__(self) -> str:
        ref = f"{self.namespace}/{self.name}"
        return ref if self.port is None else f"{ref}:{self.port}"


# The interceptor's proxy Service as the manifests in config/ create it.
INTERCEPTOR_SERVICE = ServiceRef("wakeway", "wakeway-interceptor", 8080)


def parse_host_port(text: str, *, listen: bool = False) -> HostPort:
    """``host:port`` (``[::1]:8080`` for IPv6). An address to dial needs a host and a port in
    1..65535; a ``listen`` address may leave the host out (``:8080``: every interface) and may
    ask for port 0 (any free port). Raises ``ValueError`` saying what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r} is not HOST:PORT (an IPv6 host goes in brackets: [::1]:80)")
    if not sep or not port.isdigit() or (not host and not listen):
        example = ":8080 or 127.0.0.1:8080" if listen else "127.0.0.1:8080"
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. {example})")
    lowest = 0 if listen else 1
    if not lowest <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be in {lowest}..65535")
    return HostPort(host or "0.0.0.0", int(port))


def parse_addresses(text: str) -> tuple[str, ...]:
    """``host:port,host:port`` (addresses to dial) as their ``host:port`` texts, in order,
    without repeats; empty items are skipped. Raises ``ValueError``."""
    items = (item for item in text.split(",") if item.strip())
    return tuple(dict.fromkeys(str(parse_host_port(item)) for item in items))


def parse_service_ref(text: str) -> ServiceRef:
    """``namespace/name[:port]`` (no port: any port of the Service). Raises ``ValueError``."""
    ref, colon, port = text.strip().partition(":")
    namespace, slash, name = ref.partition("/")
    if not slash or not namespace or not name or "/" in name or (colon and not port.isdigit()):
        raise ValueError(f"{text!r} is not namespace/name[:port]")
    if colon and not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: the port must be in 1..65535")
    return ServiceRef(namespace, name, int(port) if colon else None)


def setting(
    default: T,
    *,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    below: float | None = None,
    choices: Collection[str] | None = None,
    parse: Callable[[str], T] | None = None,
    check: Callable[[Any], object] | None = None,
    env: bool = True,
) -> T:
    """A settings field: its default and its rules. ``min``/``max`` are inclusive bounds,
    ``above``/``below`` exclusive ones; ``parse`` turns the variable's text into the value
    (default: by the field's type); ``check`` raises ``ValueError`` for a bad value;
    ``env=False``: not read from a variable."""
    rules = {"min": min, "max": max, "above": above, "below": below, "choices": choices}
    metadata: dict[str, object] = {k: v for k, v in rules.items() if v is not None}
    metadata |= {"parse": parse, "check": check, "env": env}
    return dataclasses.field(default=default, metadata=metadata)


def port(default: int) -> int:
    """A port to listen on: 0..65535 (0: any free port, or off where the field says so)."""
    return setting(default, min=0, max=65535)


def seconds(default: float) -> float:
    """A duration in seconds that must be greater than zero."""
    return setting(default, above=0)


def count(default: int) -> int:
    """A number of things, at least 1."""
    return setting(default, min=1)


def check_fields(obj: object) -> None:
    """Raise :class:`SettingsError` (naming the field) for the first value of ``obj`` that
    breaks its field's declared rules. Call it from ``__post_init__``; None is never checked."""
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if value is None:
            continue
        problem = _problem(value, f.metadata)
        if problem:
            raise SettingsError(f.name, problem)


def _problem(value: Any, rules: Mapping[str, Any]) -> str | None:
    if "choices" in rules and value not in rules["choices"]:
        return f"must be one of {', '.join(rules['choices'])}, got {value!r}"
    low, high = rules.get("min"), rules.get("max")
    above, below = rules.get("above"), rules.get("below")
    bad = (
        (low is not None and value < low)
        or (high is not None and value > high)
        or (above is not None and value <= above)
        or (below is not None and value >= below)
    )
    if bad:
        return f"{_bounds(low, high, above, below)}, got {value!r}"
    if rules.get("check") is not None:
        try:
            rules["check"](value)
        except ValueError as exc:
            return str(exc)
    return None


def _bounds(low: Any, high: Any, above: Any, below: Any) -> str:
    if low is not None and high is not None:
        return f"must be in {low}..{high}"
    if low is not None and below is not None:
        return f"must be in [{low}, {below})"
    if above == 0:
        return "must be greater than zero"
    if above is not None:
        return f"must be greater than {above}"
    if low == 0:
        return "must not be negative"
    if low is not None:
        return f"must be at least {low}"
    return f"must be less than {below}" if high is None else f"must be at most {high}"


def variables(cls: type, prefix: str) -> dict[str, str]:
    """Variable name -> field name, for every field of ``cls`` read from the environment."""
    return {
        prefix + f.name.upper(): f.name
        for f in dataclasses.fields(cls)
        if f.metadata.get("env", True)
    }


def settings_from_env(
    base: S,
    prefix: str,
    env: Mapping[str, str],
    *,
    aliases: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
    known: Iterable[str] = (),
    strict: bool = True,
) -> S:
    """``base`` with every field that has a ``<prefix><FIELD>`` variable replaced.

    ``aliases`` maps more variable names to fields (shared spellings, read first, so the
    prefixed name wins); ``extra`` are values already parsed (e.g. a key file). A field's text
    goes through its ``parse``, or by its type: bool (true/false/1/0/yes/no/on/off), int,
    float, str, and ``X | None`` (empty gives None; ``none`` too unless X is str). ``strict``:
    a ``WAKEWAY_*`` variable that is neither a field's, an alias, in ``known``, shared, a
    tool's, nor left to another component by its prefix is an error.
    Every problem raises :class:`SettingsError` naming the variable.
    """
    cls = type(base)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    own = variables(cls, prefix)
    if strict:
        names = [*own, *(aliases or {}), *known]
        reject_unknown(env, prefix, names)
        others = tuple(p for p in COMPONENT_PREFIXES if p != prefix)
        everyone = [*names, *SHARED_VARIABLES, *TOOL_VARIABLES]
        reject_unknown(env, PREFIX, everyone, leave=others)
    changes: dict[str, object] = dict(extra or {})
    var_of = {name: var for var, name in own.items()}
    sources = list((aliases or {}).items())
    sources += [(var, name) for var, name in own.items() if name not in changes]
    for var, name in sources:
        raw = env.get(var)
        if raw is None:
            continue
        parse = fields[name].metadata.get("parse")
        try:
            changes[name] = parse(raw.strip()) if parse else _convert(raw.strip(), hints[name])
        except ValueError as exc:
            raise SettingsError(var, str(exc)) from None
        var_of[name] = var
    try:
        return dataclasses.replace(base, **changes)  # type: ignore[type-var]
    except SettingsError as exc:
        # The dataclass's checks name the field; say it with the variable's name.
        raise SettingsError(var_of.get(exc.name, exc.name), exc.problem) from None
    except ValueError as exc:
        name, sep, problem = str(exc).partition(": ")
        if sep and name in var_of:
            raise SettingsError(var_of[name], problem) from None
        raise SettingsError(prefix.rstrip("_"), str(exc)) from None


def reject_unknown(
    env: Mapping[str, str], prefix: str, known: Iterable[str], *, leave: tuple[str, ...] = ()
) -> None:
    """Raise :class:`SettingsError` for the first variable starting with ``prefix`` (and with
    none of the prefixes ``leave``) that is not ``known``, suggesting the closest known name (a
    misspelt setting must not pass unseen)."""
    names = set(known)
    for var in sorted(env):
        if var.startswith(prefix) and var not in names and not (leave and var.startswith(leave)):
            tails = {name[len(prefix) :]: name for name in names if name.startswith(prefix)}
            close = difflib.get_close_matches(var[len(prefix) :], tails, n=1, cutoff=0.6)
            hint = f"; did you mean {tails[close[0]]}?" if close else ""
            raise SettingsError(var, f"unknown variable{hint}")


def check_identity_key(key: bytes) -> None:
    """A route identity HMAC key: at least 16 bytes."""
    if len(key) < 16:
        raise ValueError("must be at least 16 bytes")


def route_identity_key(env: Mapping[str, str]) -> bytes | None:
    """The route identity HMAC key: ``WAKEWAY_ROUTE_IDENTITY_KEY`` (base64) or the raw bytes
    of the file ``WAKEWAY_ROUTE_IDENTITY_KEY_FILE`` (a mounted Secret); None when neither."""
    key: bytes | None = None
    if env.get(ROUTE_IDENTITY_KEY):
        try:
            key = base64.b64decode(env[ROUTE_IDENTITY_KEY], validate=True)
        except ValueError:
            raise SettingsError(ROUTE_IDENTITY_KEY, "not valid base64") from None
    elif env.get(f"{ROUTE_IDENTITY_KEY}_FILE"):
        path = Path(env[f"{ROUTE_IDENTITY_KEY}_FILE"])
        try:
            key = path.read_bytes().strip()
        except OSError as exc:
            raise SettingsError(f"{ROUTE_IDENTITY_KEY}_FILE", f"{path}: {exc.strerror}") from None
    if key is not None:
        try:
            check_identity_key(key)
        except ValueError as exc:
            raise SettingsError(ROUTE_IDENTITY_KEY, str(exc)) from None
    return key


def _convert(value: str, hint: Any) -> object:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if value == "" or (value.lower() == "none" and hint is not str):
            return None
    if hint is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean (true/false)")
    if hint is int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
    if hint is float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        return number
    return value
