"""The HTTPScaledObject routing semantics as a plain scan of every entry in precedence order:
the oracle the property tests hold :class:`wakeway.routing.scaledobjects.ScaledObjectIndex`
to (see that module's docstring for the rules)."""

from __future__ import annotations

from collections.abc import Iterable

from wakeway.gateway.request import Request
from wakeway.model.httpso import HTTPScaledObject
from wakeway.routing.scaledobjects import HostEntry, headers_match, host_entries

HostRank = tuple[int, int]  # (exact 0, wildcard 1, catch-all 2; longer wildcard first)


def reference_lookup(targets: Iterable[HTTPScaledObject], req: Request) -> HostEntry | None:
    ranked: list[tuple[HostRank, int, tuple[int, int, float, str], HostEntry]] = []
    for target in targets:
        for entry in host_entries(target):
            rank = host_rank(entry.host, req.host)
            if rank is not None:
                ranked.append((rank, -len(entry.prefix), entry.sort_key, entry))
    ranked.sort(key=lambda item: item[:3])
    for _rank, _length, _key, entry in ranked:
        if prefix_matches(entry.prefix, req.path) and headers_match(entry.headers, req.headers):
            return entry
    return None


def host_rank(pattern: str, host: str) -> HostRank | None:
    if pattern == "*":
        return (2, 0)
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return (1, -len(pattern)) if host.endswith(suffix) and len(host) > len(suffix) else None
    return (0, 0) if pattern == host else None


def prefix_matches(prefix: str, path: str) -> bool:
    path = path if path.startswith("/") else "/" + path
    return not prefix or path == prefix or path.startswith(prefix + "/")
