"""Requests that must not wake a workload, and the answers the interceptor gives itself.

``spec.wakeExclusions`` lists matches (paths exact or by prefix, methods, headers, a user agent
as an RE2 regular expression). A matching request never wakes the workload and never counts as
activity: while the workload has no ready endpoint it gets the entry's static ``response``;
while it has one it is forwarded (``responseMode: WhenUnavailable``, the default) or answered
statically all the same (``Always``). This is the KEDA HTTP add-on's ``staticRoutes``, one rule
per entry, with the same names for ``response`` and ``responseMode``.

``spec.maintenance`` answers every request with its page, waking and forwarding nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from wakeway.model import fields as f
from wakeway.model.errors import ModelError
from wakeway.model.httproute import compile_regex

ResponseMode = Literal["WhenUnavailable", "Always"]
RESPONSE_MODES: tuple[ResponseMode, ...] = ("WhenUnavailable", "Always")
PathType = Literal["Exact", "PathPrefix"]
PATH_TYPES: tuple[PathType, ...] = ("Exact", "PathPrefix")

MAX_EXCLUSIONS = 32
MAX_BODY = 65536
DEFAULT_STATUS = 503
DEFAULT_RETRY_AFTER = "60"  # added to a 503 whose headers do not set Retry-After
EXCLUDED_BODY = "The service is asleep; this request does not wake it.\n"
MAINTENANCE_BODY = "The service is down for maintenance; please retry later.\n"
CONTENT_TYPE = "text/plain; charset=utf-8"
# Headers the interceptor writes itself (framing, connection management, no-store).
RESERVED_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "trailer",
        "cache-control",
    }
)

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PATH = re.compile(r"^/[^?#\s]*$")


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathType
    value: str


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """Add-on header matcher: ``value is None`` requires only that the header is present."""

    name: str  # lower case
    value: str | None = None


@dataclass(frozen=True, slots=True)
class RequestMatch:
    """Every field given must match (paths: any of them; methods: any of them)."""

    paths: tuple[PathMatch, ...] = ()
    methods: tuple[str, ...] = ()
    headers: tuple[HeaderRule, ...] = ()
    user_agent: str | None = None
    user_agent_regex: Any = field(default=None, compare=False)  # compiled RE2, searched


@dataclass(frozen=True, slots=True)
class StaticResponse:
    status_code: int = DEFAULT_STATUS
    headers: tuple[tuple[str, str], ...] = ()  # as written; see :func:`response_headers`
    body: str = EXCLUDED_BODY


@dataclass(frozen=True, slots=True)
class WakeExclusion:
    match: RequestMatch
    response: StaticResponse = field(default_factory=StaticResponse)
    response_mode: ResponseMode = "WhenUnavailable"


@dataclass(frozen=True, slots=True)
class Maintenance:
    enabled: bool = False
    response: StaticResponse = field(default_factory=lambda: StaticResponse(body=MAINTENANCE_BODY))


def response_headers(response: StaticResponse) -> tuple[tuple[str, str], ...]:
    """The headers sent: Content-Type unless given, Retry-After on a 503 unless given."""
    names = {name.lower() for name, _ in response.headers}
    out = list(response.headers)
    if "content-type" not in names:
        out.insert(0, ("Content-Type", CONTENT_TYPE))
    if response.status_code == 503 and "retry-after" not in names:
        out.append(("Retry-After", DEFAULT_RETRY_AFTER))
    return tuple(out)


# --- parsing ----------------------------------------------------------------------------------


def parse_wake_exclusions(spec: Mapping[str, Any], p: str) -> tuple[WakeExclusion, ...]:
    items = f.opt_list(spec, "wakeExclusions", p)
    if len(items) > MAX_EXCLUSIONS:
        raise ModelError(
            f"{p}.wakeExclusions", f"at most {MAX_EXCLUSIONS} entries, got {len(items)}"
        )
    return tuple(f.each(spec, "wakeExclusions", p, _exclusion))


def parse_maintenance(spec: Mapping[str, Any], p: str) -> Maintenance:
    raw = f.opt_mapping(spec, "maintenance", p)
    if raw is None:
        return Maintenance()
    path = f"{p}.maintenance"
    return Maintenance(
        enabled=f.opt_bool(raw, "enabled", path, True),
        response=_response(raw, path, MAINTENANCE_BODY),
    )


def _exclusion(raw: Any, path: str) -> WakeExclusion:
    item = f.mapping(raw, path)
    match = RequestMatch(
        paths=tuple(f.each(item, "paths", path, _path_match)),
        methods=tuple(f.each(item, "methods", path, _method)),
        headers=f.guard(item, "headers", lambda: parse_header_rules(item, path), ()),
        user_agent=f.opt_str(item, "userAgent", path),
        user_agent_regex=f.guard(item, "userAgent", lambda: _user_agent(item, path), None),
    )
    if not (match.paths or match.methods or match.headers or match.user_agent is not None):
        raise ModelError(path, "must set at least one of paths, methods, headers and userAgent")
    mode = f.opt_str(item, "responseMode", path, "WhenUnavailable")
    if mode not in RESPONSE_MODES:
        raise ModelError(
            f"{path}.responseMode", f"{mode!r} is not one of {', '.join(RESPONSE_MODES)}"
        )
    return WakeExclusion(match, _response(item, path, EXCLUDED_BODY), mode)


def _path_match(raw: Any, path: str) -> PathMatch:
    item = f.mapping(raw, path)
    kind = f.opt_str(item, "type", path, "PathPrefix")
    if kind not in PATH_TYPES:
        raise ModelError(f"{path}.type", f"{kind!r} is not one of {', '.join(PATH_TYPES)}")
    value = f.req_str(item, "value", path)
    if not _PATH.match(value):
        raise ModelError(
            f"{path}.value", f"{value!r} must start with '/' and have no query or fragment"
        )
    return PathMatch(kind, value)


def _method(raw: Any, path: str) -> str:
    method = f.as_str(raw, path)
    if not _TOKEN.match(method):
        raise ModelError(path, f"{method!r} is not an HTTP method (a token such as GET)")
    return method


def parse_header_rules(obj: Mapping[str, Any], path: str) -> tuple[HeaderRule, ...]:
    """``obj.headers``: names and optional exact values, each name once (any case)."""
    seen: set[str] = set()

    def header(raw: Any, hpath: str) -> HeaderRule:
        entry = f.mapping(raw, hpath)
        name = f.req_str(entry, "name", hpath)
        if not _TOKEN.match(name):
            raise ModelError(f"{hpath}.name", f"{name!r} is not a valid HTTP header name")
        if name.lower() in seen:
            raise ModelError(f"{hpath}.name", f"header {name!r} is listed twice")
        seen.add(name.lower())
        return HeaderRule(name.lower(), f.opt_str(entry, "value", hpath))

    return tuple(f.each(obj, "headers", path, header))


def _user_agent(item: Mapping[str, Any], path: str) -> Any:
    pattern = f.opt_str(item, "userAgent", path)
    if pattern is None:
        return None
    try:
        return compile_regex(pattern)
    except ValueError as exc:
        raise ModelError(
            f"{path}.userAgent", f"{pattern!r} is not an RE2 regular expression: {exc}"
        ) from None


def _response(item: Mapping[str, Any], path: str, default_body: str) -> StaticResponse:
    raw = f.opt_mapping(item, "response", path)
    if raw is None:
        return StaticResponse(body=default_body)
    rpath = f"{path}.response"
    body = f.opt_str(raw, "body", rpath, default_body)
    if len(body.encode()) > MAX_BODY:
        raise ModelError(f"{rpath}.body", f"must be at most {MAX_BODY} bytes")
    return StaticResponse(
        status_code=f.opt_int(raw, "statusCode", rpath, DEFAULT_STATUS, minimum=200, maximum=599),
        headers=f.guard(raw, "headers", lambda: _response_headers(raw, rpath), ()),
        body=body,
    )


def _response_headers(raw: Mapping[str, Any], rpath: str) -> tuple[tuple[str, str], ...]:
    headers = f.opt_mapping(raw, "headers", rpath)
    if headers is None:
        return ()
    out: list[tuple[str, str]] = []
    for name in headers:
        hpath = f"{rpath}.headers.{name}"
        value = f.as_str(headers[name], hpath)
        if not _TOKEN.match(name):
            raise ModelError(hpath, f"{name!r} is not a valid HTTP header name")
        if name.lower() in RESERVED_HEADERS:
            raise ModelError(hpath, f"{name!r} is set by the interceptor itself")
        if any(c in value for c in "\r\n\0"):
            raise ModelError(hpath, "must not contain CR, LF or NUL")
        out.append((name, value))
    return tuple(out)
