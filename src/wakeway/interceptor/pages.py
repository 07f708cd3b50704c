"""Responses the interceptor writes itself: errors, the placeholder and its waiting page."""

from __future__ import annotations

import html
from http import HTTPStatus

from wakeway.model.httpso import Placeholder

from .headers import COLD_START_HEADER


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Status"


def simple_response(
    status: int,
    body: str | bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    keep_alive: bool = True,
    extra: tuple[tuple[str, str], ...] = (),
    cold_start: bool | None = None,
    head_only: bool = False,
) -> bytes:
    """A complete response with a Content-Length body (omitted for HEAD)."""
    data = body.encode() if isinstance(body, str) else body
    lines = [
        b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status)),
        b"Content-Type: %s\r\n" % content_type.encode("latin-1"),
        b"Content-Length: %d\r\n" % len(data),
        b"Cache-Control: no-store\r\n",
    ]
    for name, value in extra:
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    if cold_start is not None:
        lines.append(COLD_START_HEADER + (b": true\r\n" if cold_start else b": false\r\n"))
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if not head_only:
        lines.append(data)
    return b"".join(lines)


def accepts_html(accept: str | None) -> bool:
    """True when the client lists text/html (browsers do); */* alone is not enough."""
    if not accept:
        return False
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        if media.strip().lower() != "text/html":
            continue
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def waiting_page(target: str, refresh_seconds: int, message: str) -> str:
    """A small page that reloads itself until the workload answers."""
    name = html.escape(target)
    text = html.escape(message.strip())
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{refresh_seconds}">'
        f"<title>Starting {name}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:3em;color:#333}</style>"
        f"</head><body><h1>Starting {name}</h1><p>{text}</p>"
        f"<p>This page reloads itself every {refresh_seconds} s.</p></body></html>\n"
    )


def placeholder_response(
    placeholder: Placeholder,
    target: str,
    *,
    accept: str | None,
    keep_alive: bool,
    cold_start: bool | None,
    head_only: bool,
) -> bytes:
    """The answer at the readiness deadline when a placeholder is enabled."""
    retry = (("Retry-After", str(placeholder.refresh_seconds)),)
    if accepts_html(accept):
        page = waiting_page(target, placeholder.refresh_seconds, placeholder.body)
        return simple_response(
            placeholder.status,
            page,
            content_type="text/html; charset=utf-8",
            keep_alive=keep_alive,
            extra=(*retry, ("Refresh", str(placeholder.refresh_seconds))),
            cold_start=cold_start,
            head_only=head_only,
        )
    return simple_response(
        placeholder.status,
        placeholder.body,
        content_type=placeholder.content_type,
        keep_alive=keep_alive,
        extra=retry,
        cold_start=cold_start,
        head_only=head_only,
    )
