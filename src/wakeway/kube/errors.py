"""Typed errors of the Kubernetes adapter: callers branch on the type, never on HTTP codes."""

from __future__ import annotations

import json
from typing import Any


class KubeError(Exception):
    """A failed API call; ``status`` is the HTTP status (0 when none was received)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}" if status else message)


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    """409: the object changed since it was read (or already exists)."""


class AlreadyExists(Conflict):
    pass


class Gone(KubeError):
    """410: the resourceVersion is too old; the caller must list again."""


class Forbidden(KubeError):
    pass


class Unauthorized(KubeError):
    pass


class Invalid(KubeError):
    """422: the API server's validation (schema or CEL) refused the object."""


class Unavailable(KubeError):
    """No answer, a timeout, 429 or a 5xx: worth retrying with backoff."""


def from_response(status: int, body: Any) -> KubeError:
    """The typed error for an API status and its (JSON ``Status``) body."""
    reason, message = "", ""
    doc: Any = body
    if isinstance(body, bytes | str):
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {"message": body.decode(errors="replace") if isinstance(body, bytes) else body}
    if isinstance(doc, dict):
        reason = str(doc.get("reason") or "")
        message = str(doc.get("message") or "")
    if status == 404:
        return NotFound(status, reason or "NotFound", message)
    if status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
        return cls(status, reason or "Conflict", message)
    if status == 410:
        return Gone(status, reason or "Expired", message)
    if status == 403:
        return Forbidden(status, reason or "Forbidden", message)
    if status == 401:
        return Unauthorized(status, reason or "Unauthorized", message)
    if status == 422:
        return Invalid(status, reason or "Invalid", message)
    if status == 429 or status >= 500 or status == 0:
        return Unavailable(status, reason or "Unavailable", message)
    return KubeError(status, reason or "Error", message)
