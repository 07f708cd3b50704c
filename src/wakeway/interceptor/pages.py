"""Responses the interceptor writes itself: errors, the placeholder and its waiting page."""

from __future__ import annotations

import html
from dataclasses import dataclass
from http import HTTPStatus

from wakeway.model.httpso import Placeholder

from .headers import COLD_START_HEADER


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Status"


@dataclass(frozen=True, slots=True)
class Page:
    """A response of our own, before it is framed for one protocol (HTTP/1.1 or HTTP/2)."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    extra: tuple[tuple[str, str], ...] = ()

    def fields(self, cold_start: bool | None) -> list[tuple[bytes, bytes]]:
        """Its header fields, without framing or connection fields."""
        out = [
            (b"content-type", self.content_type.encode("latin-1")),
            (b"content-length", b"%d" % len(self.body)),
            (b"cache-control", b"no-store"),
        ]
        out += [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in self.extra]
        if cold_start is not None:
            out.append((COLD_START_HEADER.lower(), b"true" if cold_start else b"false"))
        return out


def page(status: int, body: str | bytes, extra: tuple[tuple[str, str], ...] = ()) -> Page:
    return Page(status, body.encode() if isinstance(body, str) else body, extra=extra)


def render(page: Page, *, keep_alive: bool, cold_start: bool | None, head_only: bool) -> bytes:
    """``page`` as HTTP/1.1 bytes."""
    return simple_response(
        page.status,
        page.body,
        content_type=page.content_type,
        keep_alive=keep_alive,
        extra=page.extra,
        cold_start=cold_start,
        head_only=head_only,
    )


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


# gRPC status codes (grpc/doc/statuscodes.md) and the HTTP statuses they stand for (grpc
# doc/http-grpc-status-mapping.md); any other status is UNKNOWN.
GRPC_UNKNOWN = 2
GRPC_DEADLINE_EXCEEDED = 4
GRPC_UNAVAILABLE = 14
_GRPC_OF_HTTP = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}


def grpc_status(status: int, *, deadline: bool) -> int:
    """The gRPC status for an answer of our own with HTTP ``status``; DEADLINE_EXCEEDED when
    the call's own deadline (grpc-timeout) is what ended it."""
    if deadline:
        return GRPC_DEADLINE_EXCEEDED
    return _GRPC_OF_HTTP.get(status, GRPC_UNKNOWN)


def grpc_trailers_only(
    code: int, message: bytes, cold_start: bool | None
) -> list[tuple[bytes, bytes]]:
    """A trailers-only gRPC response (one HEADERS frame that ends the stream)."""
    text = b"".join(
        bytes([c]) if 0x20 <= c <= 0x7E and c != 0x25 else b"%%%02X" % c for c in message.strip()
    )
    fields = [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"%d" % code),
        (b"grpc-message", text),
    ]
    if cold_start is not None:
        fields.append((COLD_START_HEADER.lower(), b"true" if cold_start else b"false"))
    return fields


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


def placeholder_page(placeholder: Placeholder, target: str, *, accept: str | None) -> Page:
    """The answer at the readiness deadline when a placeholder is enabled; an immediate one
    (an InterceptorRoute's) exactly as written."""
    if placeholder.immediate:
        body = placeholder.body.encode()
        return Page(placeholder.status, body, placeholder.content_type, placeholder.headers)
    retry = (("Retry-After", str(placeholder.refresh_seconds)),)
    if accepts_html(accept):
        text = waiting_page(target, placeholder.refresh_seconds, placeholder.body)
        return Page(
            placeholder.status,
            text.encode(),
            content_type="text/html; charset=utf-8",
            extra=(*retry, ("Refresh", str(placeholder.refresh_seconds))),
        )
    return Page(
        placeholder.status,
        placeholder.body.encode(),
        content_type=placeholder.content_type,
        extra=retry,
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
    """The placeholder answer as HTTP/1.1 bytes."""
    return render(
        placeholder_page(placeholder, target, accept=accept),
        keep_alive=keep_alive,
        cold_start=cold_start,
        head_only=head_only,
    )
