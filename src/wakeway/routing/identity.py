"""Route identity: which HTTPRoute a request came through, in a form no one else can forge.

The interceptor serves many tenants through one Service. A client can forge the Host header,
and a route author in one namespace can write any header value into a filter, so the Host
header and a plain route name prove nothing. Instead each bound HTTPRoute rule stamps

    x-wakeway-route: <namespace>/<name>;<tag>

with a rule-level RequestHeaderModifier ``set`` (Core; ``set`` overwrites whatever the client
sent). ``tag`` is an HMAC-SHA256 of "<namespace>/<name>" under a key only the interceptor and
the operator hold; the operator publishes each route's value only in the status of the
HTTPScaledObjects that own one of its rules. A request bearing a valid identity is routed only
among that route's bound rules, and a route binds only to HTTPScaledObjects of its own namespace
unless a ReferenceGrant in the route's namespace allows it (:mod:`wakeway.routing.grants`).
"""

from __future__ import annotations

import hashlib
import hmac

IDENTITY_HEADER = "x-wakeway-route"
TAG_HEX_LENGTH = 32  # 128 bits of the MAC: far beyond guessing, short enough for a header


class RouteIdentity:
    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the route identity key must be at least 16 bytes")
        self._key = key

    def stamp(self, route_key: str) -> str:
        """The header value the route ``namespace/name`` must set."""
        return f"{route_key};{self._tag(route_key)}"

    def verify(self, value: str) -> str | None:
        """The route key a header value proves, or None when the tag does not match."""
        route_key, sep, tag = value.strip().rpartition(";")
        if not sep or not route_key:
            return None
        return route_key if hmac.compare_digest(tag, self._tag(route_key)) else None

    def _tag(self, route_key: str) -> str:
        mac = hmac.new(self._key, route_key.encode(), hashlib.sha256)
        return mac.hexdigest()[:TAG_HEX_LENGTH]
