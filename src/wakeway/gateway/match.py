"""One HTTPRouteMatch, compiled once and tested against requests.

Regular expressions (path, header and query-param values) run on RE2 and must match the whole
value, as Envoy-based implementations do: ``/v[0-9]+`` matches ``/v2`` but not ``/v2/users``.
A pattern that should match more says so (``/v[0-9]+/.*``).
"""

from __future__ import annotations

from collections.abc import Callable

from wakeway.gateway.request import Request
from wakeway.model.httproute import (
    HeaderMatch,
    PathMatch,
    QueryParamMatch,
    RouteMatch,
    compile_regex,
)

ValueTest = Callable[[str], bool]


def path_prefix_matches(prefix: str, path: str) -> bool:
    """Element-wise prefix: ``/foo`` (or ``/foo/``) matches ``/foo``, ``/foo/`` and ``/foo/bar``
    but not ``/foobar``; the trailing slash of a prefix is ignored, as the spec says."""
    prefix = prefix.rstrip("/")
    if not prefix:
        return True
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


def effective_headers(m: RouteMatch) -> tuple[HeaderMatch, ...]:
    """Header matches that count: of several entries whose names are equal ignoring case, only
    the first is considered (HTTPHeaderMatch.name)."""
    if len(m.headers) < 2:
        return m.headers
    seen: set[str] = set()
    out = []
    for header in m.headers:
        key = header.name.lower()
        if key not in seen:
            seen.add(key)
            out.append(header)
    return tuple(out)


def effective_query_params(m: RouteMatch) -> tuple[QueryParamMatch, ...]:
    """Query-param matches that count: the first entry for each exact name."""
    if len(m.query_params) < 2:
        return m.query_params
    seen: set[str] = set()
    out = []
    for param in m.query_params:
        if param.name not in seen:
            seen.add(param.name)
            out.append(param)
    return tuple(out)


def _value_test(kind: str, expected: str) -> ValueTest:
    if kind == "RegularExpression":
        return compile_regex(expected).fullmatch  # type: ignore[no-any-return]
    return expected.__eq__


def _path_test(path: PathMatch) -> ValueTest:
    if path.type == "Exact":
        return path.value.__eq__
    if path.type == "PathPrefix":
        prefix = path.value
        if prefix.rstrip("/") == "":
            return lambda _path: True
        return lambda request_path: path_prefix_matches(prefix, request_path)
    return _value_test("RegularExpression", path.value)


class CompiledMatch:
    """A :class:`RouteMatch` ready to test requests: regexes compiled, names normalised."""

    __slots__ = ("_headers", "_method", "_path", "_query", "source")

    def __init__(self, m: RouteMatch) -> None:
        self.source = m
        self._path = _path_test(m.path)
        self._method = m.method
        self._headers = tuple(
            (h.name.lower(), _value_test(h.type, h.value)) for h in effective_headers(m)
        )
        self._query = tuple(
            (q.name, _value_test(q.type, q.value)) for q in effective_query_params(m)
        )

    def __reduce__(self) -> tuple[type[CompiledMatch], tuple[RouteMatch]]:
        # Its tests are closures: pickled (to another interceptor worker) as its source.
        return (CompiledMatch, (self.source,))

    def matches(self, req: Request) -> bool:
        if self._method is not None and req.method != self._method:
            return False
        if not self._path(req.path):
            return False
        if self._headers:
            headers = req.headers
            for name, test in self._headers:
                value = headers.get(name)
                if value is None or not test(value):
                    return False
        if self._query:
            params = req.params
            for name, test in self._query:
                value = params.get(name)
                if value is None or not test(value):
                    return False
        return True

    def __repr__(self) -> str:
        return f"CompiledMatch({self.source!r})"


def compile_match(m: RouteMatch) -> CompiledMatch:
    return CompiledMatch(m)
