"""Route hostnames against the request host, and how specific a matching hostname is."""

from __future__ import annotations

# A route without hostnames matches every host and loses to any route that names one.
_EXACT, _WILDCARD, _ANY = 0, 1, 2

HostnameRank = tuple[int, int]
_ANY_RANK: HostnameRank = (_ANY, 0)  # a route without hostnames: after every named one


def hostname_matches(route_hostname: str, host: str) -> bool:
    """``foo.example.com`` matches itself; ``*.example.com`` matches one or more labels in front
    of ``example.com`` but not ``example.com`` itself. ``host`` is already lower-case, portless."""
    route_hostname = route_hostname.lower()
    if route_hostname.startswith("*."):
        suffix = route_hostname[1:]  # ".example.com"
        return len(host) > len(suffix) and host.endswith(suffix)
    return host == route_hostname


def hostname_rank(route_hostname: str | None, host: str) -> HostnameRank | None:
    """None when the route hostname does not match ``host``, else a key where smaller is more
    specific: a non-wildcard hostname beats a wildcard, and among each the longer one wins,
    as the HTTPRoute ``hostnames`` precedence says. ``None`` stands for a route without
    hostnames, which matches everything and comes last."""
    if route_hostname is None:
        return _ANY_RANK
    if not hostname_matches(route_hostname, host):
        return None
    kind = _WILDCARD if route_hostname.startswith("*.") else _EXACT
    return (kind, -len(route_hostname))


def route_hostname_rank(hostnames: tuple[str, ...], host: str) -> HostnameRank | None:
    """The best rank of a route's hostnames for ``host``; None when none of them match."""
    if not hostnames:
        return _ANY_RANK
    ranks = [r for r in (hostname_rank(h, host) for h in hostnames) if r is not None]
    return min(ranks) if ranks else None
