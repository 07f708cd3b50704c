"""Header rules for forwarding (pure): hop-by-hop removal, X-Forwarded-*, Via, framing.

Heads are built as one ``b"".join`` of the kept raw header lines plus the ones this hop adds, so
field names keep their original case and values are never re-encoded. RFC 9110 section 7.6.1:
``Connection`` and every field it names, plus Keep-Alive, Proxy-Connection, TE, Trailer,
Transfer-Encoding and Upgrade, describe one connection and are not forwarded; Proxy-* fields
(credentials for a proxy) are consumed here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

RawHeaders = Sequence[tuple[bytes, bytes]]
Framing = Literal["none", "length", "chunked", "close"]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
VIA_VALUE = b"1.1 wakeway"
COLD_START_HEADER = b"X-Wakeway-Cold-Start"


@dataclass(slots=True)
class HeadFacts:
    """What framing and connection handling need from a head's fields."""

    connection: frozenset[bytes]
    content_length: bytes | None
    chunked: bool  # the last transfer coding is chunked
    codings: tuple[bytes, ...]  # every transfer coding, in order, lower-case
    upgrade: bytes | None
    hosts: int
    host: bytes | None


def scan(headers: RawHeaders) -> HeadFacts:
    tokens: set[bytes] = set()
    content_length: bytes | None = None
    codings: list[bytes] = []
    upgrade: bytes | None = None
    hosts = 0
    host: bytes | None = None
    for name, value in headers:
        n = len(name)
        if n == 4 and name.lower() == b"host":
            hosts += 1
            host = value
        elif n == 10 and name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
        elif n == 14 and name.lower() == b"content-length":
            content_length = value.strip()
        elif n == 17 and name.lower() == b"transfer-encoding":
            codings.extend(c for c in (t.strip().lower() for t in value.split(b",")) if c)
        elif n == 7 and name.lower() == b"upgrade":
            upgrade = value.strip()
    tokens.discard(b"")
    chunked = bool(codings) and codings[-1] == b"chunked"
    return HeadFacts(
        frozenset(tokens), content_length, chunked, tuple(codings), upgrade, hosts, host
    )


def request_refusal(facts: HeadFacts, version: str) -> tuple[int, str] | None:
    """Why a request head must not be forwarded, as (status, reason); None when it may be.

    Only HTTP/1.0 and 1.1 are spoken (the head goes upstream as 1.1). The body is re-framed
    upstream with chunked alone, so a request whose framing this hop cannot reproduce exactly
    is refused rather than forwarded with a different meaning (RFC 9112 sections 6.1 and 6.3).
    """
    if version not in ("1.0", "1.1"):
        if version.startswith("0."):
            return 400, "the request line has no HTTP version"
        return 505, f"HTTP/{version} is not supported; use HTTP/1.1"
    if facts.hosts > 1 or (facts.hosts == 0 and version == "1.1"):
        return 400, "a request needs exactly one Host header field"
    codings = facts.codings
    if codings:
        if version == "1.0":
            return 400, "Transfer-Encoding in an HTTP/1.0 request"
        if facts.content_length is not None:
            return 400, "Content-Length together with Transfer-Encoding"
        if not facts.chunked:
            return 400, "Transfer-Encoding does not end with chunked"
        if len(codings) > 1:
            if b"chunked" in codings[:-1]:
                return 400, "Transfer-Encoding applies chunked more than once"
            others = ", ".join(c.decode("latin-1") for c in codings[:-1])
            return 501, f"transfer coding {others} is not supported"
    return None


def request_head(
    method: bytes,
    target: bytes,
    headers: RawHeaders,
    facts: HeadFacts,
    *,
    client_ip: bytes,
    proto: bytes = b"http",
    framing: Framing,
    upgrade: bool,
    via: bool,
) -> bytes:
    """The head sent upstream (always HTTP/1.1): end-to-end fields plus this hop's own.
    ``proto``: the client's scheme, ``https`` when it came over TLS, for X-Forwarded-Proto."""
    out: list[bytes] = [method, b" ", target, b" HTTP/1.1\r\n"]
    xff: list[bytes] = []
    has_proto = False
    has_fhost = False
    drop = HOP_BY_HOP | facts.connection if facts.connection else HOP_BY_HOP
    for name, value in headers:
        low = name.lower()
        if low in drop or low[:6] == b"proxy-":
            continue
        if low == b"x-forwarded-for":
            xff.append(value)
            continue
        if low == b"x-forwarded-proto":
            has_proto = True
        elif low == b"x-forwarded-host":
            has_fhost = True
        elif low == b"content-length" and framing != "length":
            continue
        out += (name, b": ", value, b"\r\n")
    xff.append(client_ip)
    out += (b"X-Forwarded-For: ", b", ".join(xff), b"\r\n")
    if not has_proto:
        out += (b"X-Forwarded-Proto: ", proto, b"\r\n")
    if not has_fhost and facts.host is not None:
        out += (b"X-Forwarded-Host: ", facts.host, b"\r\n")
    if via:
        out += (b"Via: ", VIA_VALUE, b"\r\n")
    if framing == "chunked":
        out.append(b"Transfer-Encoding: chunked\r\n")
    if upgrade and facts.upgrade is not None:
        out += (b"Connection: upgrade\r\nUpgrade: ", facts.upgrade, b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def response_head(
    status: int,
    reason: bytes,
    headers: RawHeaders,
    facts: HeadFacts,
    *,
    framing: Framing,
    keep_alive: bool,
    cold_start: bool | None,
    via: bool,
) -> bytes:
    """The head sent to the client for an upstream response.

    ``framing`` is how this hop frames the body: "length" keeps Content-Length, "chunked" adds
    Transfer-Encoding, "close" ends the body by closing, "none" has no body (HEAD, 1xx, 204,
    304), where a Content-Length the upstream sent is kept because it describes the resource.
    ``cold_start`` adds X-Wakeway-Cold-Start unless None.
    """
    out: list[bytes] = [b"HTTP/1.1 %d " % status, reason or b"-", b"\r\n"]
    drop = HOP_BY_HOP | facts.connection if facts.connection else HOP_BY_HOP
    for name, value in headers:
        low = name.lower()
        if low in drop or low[:6] == b"proxy-":
            continue
        if low == b"content-length" and framing not in ("length", "none"):
            continue
        out += (name, b": ", value, b"\r\n")
    if via:
        out += (b"Via: ", VIA_VALUE, b"\r\n")
    if cold_start is not None:
        out += (COLD_START_HEADER, b": true\r\n" if cold_start else b": false\r\n")
    if status == 101 and facts.upgrade is not None:
        out += (b"Connection: upgrade\r\nUpgrade: ", facts.upgrade, b"\r\n")
    elif framing == "chunked":
        out.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive and status != 101:
        out.append(b"Connection: close\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def body_framing(
    status: int, request_method: bytes, facts: HeadFacts, *, client_http11: bool
) -> tuple[Framing, Framing]:
    """(how the upstream frames the body, how this hop frames it to the client)."""
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        return "none", "none"
    if facts.chunked:
        upstream: Framing = "chunked"
    elif facts.content_length is not None:
        return "length", "length"
    else:
        upstream = "close"
    return upstream, ("chunked" if client_http11 else "close")


def header_value(headers: Iterable[tuple[bytes, bytes]], lower_name: bytes) -> bytes | None:
    """The values of a field joined with ", " (RFC 9110 section 5.3), or None when absent."""
    values = [v for n, v in headers if n.lower() == lower_name]
    return b", ".join(values) if values else None


def grpc_timeout(headers: RawHeaders) -> float | None:
    """The ``grpc-timeout`` field in seconds (gRPC over HTTP/2: digits and a unit)."""
    for name, value in headers:
        if name == b"grpc-timeout":
            units = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
            digits, unit = value[:-1], value[-1:]
            if unit in units and digits.isdigit() and 0 < len(digits) <= 8:
                return max(int(digits) * units[unit], 1e-3)
            return None
    return None
