"""Gateway API ``gateway.networking.k8s.io/v1`` HTTPRoute (standard channel): model and parser.

The parser applies the defaults the CRD schema applies (a rule without matches matches
``PathPrefix /``, a backendRef weighs 1, ...) and rejects what the schema, its CEL rules and
the limits reject where it matters to matching, so that everything past this module can trust
its input. Regular expressions are checked with RE2, the engine matching uses.

Longer than most modules on purpose: it is one reading of one CRD, and its checks follow the
Gateway API's schema field by field, so they are kept together in the schema's order.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal, cast

import re2

from wakeway.model.errors import ModelError
from wakeway.model.fields import (
    Raw,
    as_str,
    each,
    guard,
    join,
    known,
    mapping,
    opaque,
    opt_int,
    opt_list,
    opt_mapping,
    opt_str,
    parse_document,
    req_str,
)
from wakeway.model.meta import ObjectMeta, parse_meta

API_GROUP: Final = "gateway.networking.k8s.io"

PathMatchType = Literal["Exact", "PathPrefix", "RegularExpression"]
ValueMatchType = Literal["Exact", "RegularExpression"]

PATH_MATCH_TYPES: Final = ("Exact", "PathPrefix", "RegularExpression")
VALUE_MATCH_TYPES: Final = ("Exact", "RegularExpression")
METHODS: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
FILTER_TYPES: Final = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestMirror",
    "RequestRedirect",
    "URLRewrite",
    "ExtensionRef",
    # Experimental channel; recognised so a route using them is read, not rejected.
    "CORS",
    "ExternalAuth",
)

# Limits from the CRD schema.
MAX_HOSTNAMES: Final = 16
MAX_PARENT_REFS: Final = 32
MAX_RULES: Final = 16
MAX_MATCHES_PER_RULE: Final = 64
MAX_MATCHES_PER_ROUTE: Final = 128
MAX_HEADER_MATCHES: Final = 16
MAX_QUERY_PARAM_MATCHES: Final = 16
MAX_FILTERS: Final = 16
MAX_BACKEND_REFS: Final = 16
MAX_PATH_LENGTH: Final = 1024
MAX_HEADER_VALUE_LENGTH: Final = 4096
MAX_QUERY_VALUE_LENGTH: Final = 1024
MAX_WEIGHT: Final = 1_000_000

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_HOSTNAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
_PRECISE_HOSTNAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_SECTION_NAME = _PRECISE_HOSTNAME
_GROUP = re.compile(rf"({_LABEL}(\.{_LABEL})*)?")
_KIND = re.compile(r"[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?")
_NAMESPACE = re.compile(_LABEL)
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_PATH_CHARS = re.compile(r"(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+")


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathMatchType = "PathPrefix"
    value: str = "/"


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """``name`` as written; header names compare case-insensitively."""

    type: ValueMatchType
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class QueryParamMatch:
    """``name`` compares case-sensitively."""

    type: ValueMatchType
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class RouteMatch:
    path: PathMatch = PathMatch()
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[QueryParamMatch, ...] = ()
    method: str | None = None


DEFAULT_MATCH: Final = RouteMatch()


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    """RequestHeaderModifier / ResponseHeaderModifier: ``set`` and ``add`` are (name, value)."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PathModifier:
    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"]
    value: str


@dataclass(frozen=True, slots=True)
class URLRewrite:
    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True)
class RequestRedirect:
    scheme: str | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class RouteFilter:
    """One filter; the field matching ``type`` is set, filters we do not model keep type only."""

    type: str
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    url_rewrite: URLRewrite | None = None
    request_redirect: RequestRedirect | None = None


@dataclass(frozen=True, slots=True)
class BackendRef:
    group: str
    kind: str
    name: str
    namespace: str | None
    port: int | None
    weight: int = 1
    filters: tuple[RouteFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class RouteRule:
    name: str | None
    matches: tuple[RouteMatch, ...]
    filters: tuple[RouteFilter, ...] = ()
    backend_refs: tuple[BackendRef, ...] = ()


@dataclass(frozen=True, slots=True)
class ParentRef:
    group: str
    kind: str
    namespace: str | None
    name: str
    section_name: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    meta: ObjectMeta
    hostnames: tuple[str, ...]
    parent_refs: tuple[ParentRef, ...]
    rules: tuple[RouteRule, ...]

    @property
    def key(self) -> str:
        return self.meta.key

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def creation_timestamp(self) -> float:
        return self.meta.creation_timestamp

    @property
    def generation(self) -> int:
        return self.meta.generation

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.meta.annotations


# --- regular expressions -----------------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def compile_regex(pattern: str) -> Any:
    """Compile with RE2 (linear time, no backtracking); raises ``ValueError`` if RE2 refuses."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(str(reason)) from None


# --- the parser ----------------------------------------------------------------------------------


def parse_httproute(
    doc: Mapping[str, Any], default_namespace: str = "default", *, strict: bool = False
) -> HTTPRoute:
    """An :class:`HTTPRoute` from its JSON/YAML form; one :class:`ModelError` lists every
    problem, each naming its field. ``strict`` (files): an unknown field is one of them, except
    the Gateway API's fields wakeway does not use (rule timeouts, retry, session persistence,
    the bodies of filters the gateway applies). Objects read from the API server are not held
    to it: the Gateway API's CRD is the cluster's, and a newer version may add fields."""
    read = partial(_parse, default_namespace=default_namespace)
    top = ("apiVersion", "kind", "status")
    return parse_document(mapping(doc, ""), read, known=top, strict=strict)


def _parse(doc: Raw, default_namespace: str) -> HTTPRoute:
    meta = parse_meta(doc, default_namespace)
    spec = opt_mapping(doc, "spec", "")
    if spec is None:
        raise ModelError("spec", "is required")
    return HTTPRoute(
        meta=meta,
        hostnames=guard(spec, "hostnames", lambda: _hostnames(spec), ()),
        parent_refs=guard(spec, "parentRefs", lambda: _parent_refs(spec), ()),
        rules=guard(spec, "rules", lambda: _rules(spec), ()),
    )


def _parent_refs(spec: Raw) -> tuple[ParentRef, ...]:
    _bounded_list(spec, "parentRefs", "spec", MAX_PARENT_REFS)
    return tuple(each(spec, "parentRefs", "spec", _parent_ref))


def _bounded_list(obj: Raw, key: str, path: str, limit: int) -> Sequence[Any]:
    items = opt_list(obj, key, path)
    if len(items) > limit:
        raise ModelError(join(path, key), f"must have at most {limit} items, got {len(items)}")
    return items


def _hostnames(spec: Raw) -> tuple[str, ...]:
    out: list[str] = []
    for i, raw in enumerate(_bounded_list(spec, "hostnames", "spec", MAX_HOSTNAMES)):
        out.append(_hostname(raw, join("spec.hostnames", i), wildcard=True))
    return tuple(out)


def _hostname(raw: Any, path: str, *, wildcard: bool) -> str:
    value = as_str(raw, path)
    pattern = _HOSTNAME if wildcard else _PRECISE_HOSTNAME
    if not 1 <= len(value) <= 253 or not pattern.fullmatch(value):
        shape = "with an optional leading '*.' label " if wildcard else ""
        raise ModelError(
            path, f"{value!r} is not a lower-case RFC 1123 hostname {shape}(e.g. foo.example.com)"
        )
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return value
    raise ModelError(path, f"{value!r} is an IP address; hostnames must be names")


def _pattern_str(obj: Raw, key: str, path: str, pattern: re.Pattern[str], what: str) -> str:
    value = req_str(obj, key, path)
    if not pattern.fullmatch(value):
        raise ModelError(join(path, key), f"{value!r} is not a valid {what}")
    return value


def _opt_pattern_str(
    obj: Raw, key: str, path: str, pattern: re.Pattern[str], what: str
) -> str | None:
    value = opt_str(obj, key, path)
    if value is not None and not pattern.fullmatch(value):
        raise ModelError(join(path, key), f"{value!r} is not a valid {what}")
    return value


def _port(obj: Raw, path: str) -> int | None:
    return opt_int(obj, "port", path, minimum=1, maximum=65535)


def _parent_ref(raw: Any, path: str) -> ParentRef:
    obj = mapping(raw, path)
    group = _opt_pattern_str(obj, "group", path, _GROUP, "API group")
    return ParentRef(
        group=API_GROUP if group is None else group,
        kind=_opt_pattern_str(obj, "kind", path, _KIND, "kind") or "Gateway",
        namespace=_opt_pattern_str(obj, "namespace", path, _NAMESPACE, "namespace") or None,
        name=req_str(obj, "name", path),
        section_name=_opt_pattern_str(obj, "sectionName", path, _SECTION_NAME, "section name")
        or None,
        port=_port(obj, path),
    )


def _rules(spec: Raw) -> tuple[RouteRule, ...]:
    raw_rules = _bounded_list(spec, "rules", "spec", MAX_RULES)
    if not raw_rules:
        # The schema's default: one rule that matches every request.
        return (RouteRule(name=None, matches=(DEFAULT_MATCH,)),)
    rules = tuple(each(spec, "rules", "spec", _rule))
    total = sum(len(rule.matches) for rule in rules)
    if total > MAX_MATCHES_PER_ROUTE:
        raise ModelError(
            "spec.rules",
            f"must have at most {MAX_MATCHES_PER_ROUTE} matches across all rules, got {total}",
        )
    seen: dict[str, int] = {}
    for i, rule in enumerate(rules):
        if rule.name is None:
            continue
        if rule.name in seen:
            raise ModelError(
                join(join("spec.rules", i), "name"),
                f"{rule.name!r} is already the name of spec.rules[{seen[rule.name]}]",
            )
        seen[rule.name] = i
    return rules


def _rule(raw: Any, path: str) -> RouteRule:
    obj = mapping(raw, path)
    known(obj, "timeouts", "retry", "sessionPersistence")  # the gateway's, not wakeway's
    name = _opt_pattern_str(obj, "name", path, _SECTION_NAME, "rule name")
    raw_matches = _bounded_list(obj, "matches", path, MAX_MATCHES_PER_RULE)
    matches = tuple(_match(m, join(join(path, "matches"), i)) for i, m in enumerate(raw_matches))
    filters = _filters(obj, path)
    backend_refs = tuple(
        _backend_ref(b, join(join(path, "backendRefs"), i))
        for i, b in enumerate(_bounded_list(obj, "backendRefs", path, MAX_BACKEND_REFS))
    )
    rule = RouteRule(
        name=name,
        matches=matches or (DEFAULT_MATCH,),
        filters=filters,
        backend_refs=backend_refs,
    )
    _check_rule(rule, path)
    return rule


def _check_rule(rule: RouteRule, path: str) -> None:
    """The rule-level CEL rules of the CRD."""
    if rule.backend_refs and any(f.type == "RequestRedirect" for f in rule.filters):
        raise ModelError(
            join(path, "filters"), "a RequestRedirect filter must not be used with backendRefs"
        )
    all_filters = list(rule.filters)
    for backend in rule.backend_refs:
        all_filters.extend(backend.filters)
    if any(_replaces_prefix(f) for f in all_filters) and (
        len(rule.matches) != 1 or rule.matches[0].path.type != "PathPrefix"
    ):
        raise ModelError(
            join(path, "matches"),
            "a filter with path.replacePrefixMatch needs exactly one PathPrefix match",
        )


def _replaces_prefix(f: RouteFilter) -> bool:
    for modifier in (
        f.url_rewrite.path if f.url_rewrite else None,
        f.request_redirect.path if f.request_redirect else None,
    ):
        if modifier is not None and modifier.type == "ReplacePrefixMatch":
            return True
    return False


def _match(raw: Any, path: str) -> RouteMatch:
    obj = mapping(raw, path)
    raw_path = opt_mapping(obj, "path", path)
    path_match = PathMatch() if raw_path is None else _path_match(raw_path, join(path, "path"))
    headers = tuple(
        _header_match(h, join(join(path, "headers"), i))
        for i, h in enumerate(_bounded_list(obj, "headers", path, MAX_HEADER_MATCHES))
    )
    _unique_names([h.name for h in headers], join(path, "headers"))
    query_params = tuple(
        _query_param_match(q, join(join(path, "queryParams"), i))
        for i, q in enumerate(_bounded_list(obj, "queryParams", path, MAX_QUERY_PARAM_MATCHES))
    )
    _unique_names([q.name for q in query_params], join(path, "queryParams"))
    method = opt_str(obj, "method", path)
    if method is not None and method not in METHODS:
        raise ModelError(
            join(path, "method"), f"{method!r} is not one of {', '.join(METHODS)} (upper case)"
        )
    return RouteMatch(path=path_match, headers=headers, query_params=query_params, method=method)


def _unique_names(names: Sequence[str], path: str) -> None:
    # listType=map keyed by name: the API server rejects exact duplicates.
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise ModelError(
                join(join(path, i), "name"), f"{name!r} is already used by {path}[{seen[name]}]"
            )
        seen[name] = i


def _path_match(obj: Raw, path: str) -> PathMatch:
    kind = opt_str(obj, "type", path, "PathPrefix")
    if kind not in PATH_MATCH_TYPES:
        raise ModelError(
            join(path, "type"), f"{kind!r} is not one of {', '.join(PATH_MATCH_TYPES)}"
        )
    value = opt_str(obj, "value", path, "/")
    assert value is not None
    where = join(path, "value")
    if len(value) > MAX_PATH_LENGTH:
        raise ModelError(where, f"must be at most {MAX_PATH_LENGTH} characters")
    if kind == "RegularExpression":
        _check_regex(value, where)
    else:
        _check_plain_path(value, where)
    return PathMatch(type=cast(PathMatchType, kind), value=value)


def _check_plain_path(value: str, where: str) -> None:
    """The CEL rules for Exact and PathPrefix values."""
    if not value.startswith("/"):
        raise ModelError(where, f"{value!r} must be an absolute path starting with '/'")
    for bad in ("//", "/./", "/../", "%2f", "%2F", "#"):
        if bad in value:
            raise ModelError(where, f"{value!r} must not contain {bad!r}")
    for bad in ("/..", "/."):
        if value.endswith(bad):
            raise ModelError(where, f"{value!r} must not end with {bad!r}")
    if not _PATH_CHARS.fullmatch(value):
        raise ModelError(where, f"{value!r} may only contain RFC 3986 path characters or %-escapes")


def _check_regex(value: str, where: str) -> None:
    try:
        compile_regex(value)
    except ValueError as exc:
        raise ModelError(where, f"{value!r} is not an RE2 regular expression: {exc}") from None


def _value_match_parts(obj: Raw, path: str, max_value: int) -> tuple[ValueMatchType, str, str]:
    kind = opt_str(obj, "type", path, "Exact")
    if kind not in VALUE_MATCH_TYPES:
        raise ModelError(
            join(path, "type"), f"{kind!r} is not one of {', '.join(VALUE_MATCH_TYPES)}"
        )
    name = _header_name(obj, "name", path)
    value = req_str(obj, "value", path)
    if len(value) > max_value:
        raise ModelError(join(path, "value"), f"must be at most {max_value} characters")
    if kind == "RegularExpression":
        _check_regex(value, join(path, "value"))
    return cast(ValueMatchType, kind), name, value


def _header_name(obj: Raw, key: str, path: str) -> str:
    name = req_str(obj, key, path)
    if len(name) > 256 or not _HEADER_NAME.fullmatch(name):
        raise ModelError(
            join(path, key), f"{name!r} is not a valid HTTP header name (RFC 7230 token)"
        )
    return name


def _header_match(raw: Any, path: str) -> HeaderMatch:
    kind, name, value = _value_match_parts(mapping(raw, path), path, MAX_HEADER_VALUE_LENGTH)
    return HeaderMatch(type=kind, name=name, value=value)


def _query_param_match(raw: Any, path: str) -> QueryParamMatch:
    kind, name, value = _value_match_parts(mapping(raw, path), path, MAX_QUERY_VALUE_LENGTH)
    return QueryParamMatch(type=kind, name=name, value=value)


# --- filters and backends ---------------------------------------------------------------------

_FILTER_FIELDS: Final = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestMirror": "requestMirror",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "ExtensionRef": "extensionRef",
    "CORS": "cors",
    "ExternalAuth": "externalAuth",
}
_SINGLETON_FILTERS: Final = (
    "RequestHeaderModifier",
    "ResponseHeaderModifier",
    "RequestRedirect",
    "URLRewrite",
)


def _filters(obj: Raw, path: str) -> tuple[RouteFilter, ...]:
    filters = tuple(
        _filter(f, join(join(path, "filters"), i))
        for i, f in enumerate(_bounded_list(obj, "filters", path, MAX_FILTERS))
    )
    where = join(path, "filters")
    types = [f.type for f in filters]
    if "RequestRedirect" in types and "URLRewrite" in types:
        raise ModelError(where, "may have a RequestRedirect or a URLRewrite filter, not both")
    for kind in _SINGLETON_FILTERS:
        if types.count(kind) > 1:
            raise ModelError(where, f"a {kind} filter cannot be repeated")
    return filters


def _filter(raw: Any, path: str) -> RouteFilter:
    obj = mapping(raw, path)
    kind = req_str(obj, "type", path)
    if kind not in _FILTER_FIELDS:
        raise ModelError(join(path, "type"), f"{kind!r} is not one of {', '.join(FILTER_TYPES)}")
    own = _FILTER_FIELDS[kind]
    for other in _FILTER_FIELDS.values():
        if other != own and obj.get(other) is not None:
            raise ModelError(join(path, other), f"must not be set on a {kind} filter")
    config = opt_mapping(obj, own, path)
    if config is None:
        raise ModelError(join(path, own), f"is required for a {kind} filter")
    where = join(path, own)
    if kind == "RequestHeaderModifier":
        return RouteFilter(kind, request_header_modifier=_header_modifier(config, where))
    if kind == "ResponseHeaderModifier":
        return RouteFilter(kind, response_header_modifier=_header_modifier(config, where))
    if kind == "URLRewrite":
        return RouteFilter(kind, url_rewrite=_url_rewrite(config, where))
    if kind == "RequestRedirect":
        return RouteFilter(kind, request_redirect=_request_redirect(config, where))
    opaque(config)  # applied by the gateway; wakeway only needs to know it is there
    return RouteFilter(kind)


def _header_modifier(obj: Raw, path: str) -> HeaderModifier:
    def pairs(key: str) -> tuple[tuple[str, str], ...]:
        out = []
        for i, raw in enumerate(_bounded_list(obj, key, path, 16)):
            item_path = join(join(path, key), i)
            item = mapping(raw, item_path)
            out.append((_header_name(item, "name", item_path), req_str(item, "value", item_path)))
        _unique_names([name for name, _ in out], join(path, key))
        return tuple(out)

    remove = []
    for i, raw in enumerate(_bounded_list(obj, "remove", path, 16)):
        name = as_str(raw, join(join(path, "remove"), i))
        if not _HEADER_NAME.fullmatch(name):
            raise ModelError(join(join(path, "remove"), i), f"{name!r} is not a header name")
        remove.append(name)
    modifier = HeaderModifier(set=pairs("set"), add=pairs("add"), remove=tuple(remove))
    # Only one action per header name is permitted.
    seen: set[str] = set()
    for name in [n for n, _ in modifier.set] + [n for n, _ in modifier.add] + remove:
        if name.lower() in seen:
            raise ModelError(path, f"header {name!r} has more than one action")
        seen.add(name.lower())
    return modifier


def _path_modifier(obj: Raw, path: str) -> PathModifier:
    kind = req_str(obj, "type", path)
    if kind == "ReplaceFullPath":
        key, other = "replaceFullPath", "replacePrefixMatch"
    elif kind == "ReplacePrefixMatch":
        key, other = "replacePrefixMatch", "replaceFullPath"
    else:
        raise ModelError(
            join(path, "type"), f"{kind!r} is not one of ReplaceFullPath, ReplacePrefixMatch"
        )
    if obj.get(other) is not None:
        raise ModelError(join(path, other), f"must not be set when type is {kind}")
    value = opt_str(obj, key, path)
    if value is None:
        raise ModelError(join(path, key), f"is required when type is {kind}")
    if len(value) > MAX_PATH_LENGTH:
        raise ModelError(join(path, key), f"must be at most {MAX_PATH_LENGTH} characters")
    return PathModifier(
        type=cast(Literal["ReplaceFullPath", "ReplacePrefixMatch"], kind), value=value
    )


def _opt_precise_hostname(obj: Raw, path: str) -> str | None:
    raw = obj.get("hostname")
    return None if raw is None else _hostname(raw, join(path, "hostname"), wildcard=False)


def _opt_path_modifier(obj: Raw, path: str) -> PathModifier | None:
    raw = opt_mapping(obj, "path", path)
    return None if raw is None else _path_modifier(raw, join(path, "path"))


def _url_rewrite(obj: Raw, path: str) -> URLRewrite:
    return URLRewrite(hostname=_opt_precise_hostname(obj, path), path=_opt_path_modifier(obj, path))


def _request_redirect(obj: Raw, path: str) -> RequestRedirect:
    scheme = opt_str(obj, "scheme", path)
    if scheme is not None and scheme not in ("http", "https"):
        raise ModelError(join(path, "scheme"), f"{scheme!r} is not one of http, https")
    status = opt_int(obj, "statusCode", path, 302)
    if status not in (301, 302, 303, 307, 308):
        raise ModelError(
            join(path, "statusCode"), f"{status} is not one of 301, 302, 303, 307, 308"
        )
    return RequestRedirect(
        scheme=scheme,
        hostname=_opt_precise_hostname(obj, path),
        path=_opt_path_modifier(obj, path),
        port=_port(obj, path),
        status_code=status,
    )


def _backend_ref(raw: Any, path: str) -> BackendRef:
    obj = mapping(raw, path)
    group = _opt_pattern_str(obj, "group", path, _GROUP, "API group") or ""
    kind = _opt_pattern_str(obj, "kind", path, _KIND, "kind") or "Service"
    port = _port(obj, path)
    if group == "" and kind == "Service" and port is None:
        raise ModelError(join(path, "port"), "is required for a Service backend")
    weight = opt_int(obj, "weight", path, 1, minimum=0, maximum=MAX_WEIGHT)
    assert weight is not None
    return BackendRef(
        group=group,
        kind=kind,
        name=req_str(obj, "name", path),
        namespace=_opt_pattern_str(obj, "namespace", path, _NAMESPACE, "namespace") or None,
        port=port,
        weight=weight,
        filters=_filters(obj, path),
    )
