"""The request facts that routing decides on, built once per request by the interceptor."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl


class Request:
    """What a route match looks at.

    ``host`` is lower-case without the port; ``headers`` maps lower-case names to values (a
    repeated header joined with ", " as RFC 9110 section 5.3 allows); ``query`` is the raw query
    string without the "?". Query parameters are parsed lazily: most routes never ask.
    """

    __slots__ = ("_params", "headers", "host", "method", "path", "query")

    def __init__(
        self,
        method: str,
        host: str,
        path: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.method = method
        self.host = normalize_host(host)
        self.path = path or "/"
        self.query = query
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self._params: dict[str, str] | None = None

    @property
    def params(self) -> Mapping[str, str]:
        """Query parameters by exact (case-sensitive) name; the first value of a repeated one."""
        if self._params is None:
            params: dict[str, str] = {}
            for name, value in parse_qsl(self.query, keep_blank_values=True):
                params.setdefault(name, value)
            self._params = params
        return self._params

    def __repr__(self) -> str:
        q = f"?{self.query}" if self.query else ""
        return f"Request({self.method} {self.host}{self.path}{q})"


def normalize_host(host: str) -> str:
    """Lower-case, without the port and without a trailing dot; IPv6 literals keep brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    colon = host.rfind(":")
    if colon != -1 and host[colon + 1 :].isdigit():
        host = host[:colon]
    return host.rstrip(".")
