"""What the interceptor needs from a routing table: one synchronous lookup."""

from __future__ import annotations

from typing import Protocol

from wakeway.gateway.request import Request
from wakeway.model.httpso import HTTPScaledObject


class Router(Protocol):
    """Maps a request to its target; ``None`` means no route (the client gets 404)."""

    def lookup(self, req: Request) -> HTTPScaledObject | None: ...
