"""Generated HTTP/1.1 request streams and what a proxy must do with each request in them.

Every generated request carries its verdict:

- ``ok``: well formed; it must be forwarded exactly once, with this method, target and body
  (byte for byte, whatever the framing and chunking it arrived in), and answered in order;
- ``bad``: malformed or ambiguous in a way that invites request smuggling; it must be refused
  (a 4xx; 501 or 505 for a transfer coding or an HTTP version this hop does not implement),
  nothing of it forwarded complete, and nothing after it on that connection;
- ``either``: the RFCs let a server accept it or refuse it (obsolete line folding, bare LF line
  ends, an HTTP/1.0 request with chunked framing...); if accepted it is held to ``ok``'s rule.

Requests are built from parts, so the model knows the body the proxy must forward without
parsing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st

Verdict = Literal["ok", "bad", "either"]


@dataclass(frozen=True, slots=True)
class Case:
    raw: bytes
    verdict: Verdict
    method: bytes
    target: bytes
    body: bytes
    closes: bool  # the connection ends after this request's answer (close, HTTP/1.0)
    fields: tuple[tuple[bytes, bytes], ...] = ()  # X-Fuzz fields, as they must be forwarded
    shape: str = "valid"


TERMINATOR = Case(
    raw=b"GET /end HTTP/1.1\r\nHost: end\r\nConnection: close\r\n\r\n",
    verdict="ok",
    method=b"GET",
    target=b"/end",
    body=b"",
    closes=True,
)

PATH_CHARS = "abcXYZ019-._~%!$&'()*+,;=:@/"
SMUGGLED = [
    b"GET /smuggled HTTP/1.1\r\nHost: s\r\n\r\n",
    b"0\r\n\r\n",
    b"\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
]

hosts = st.sampled_from([b"a", b"app.example.com", b"app.example.com:8080", b"[::1]:80"])
host_names = st.sampled_from([b"Host", b"host", b"HOST", b"hOsT"])
fuzz_names = st.sampled_from([b"X-Fuzz", b"x-fuzz", b"X-FUZZ-2", b"x-Fuzz-Long-Name_1"])
ows = st.sampled_from([b"", b" ", b"  ", b"\t", b" \t"])
field_values = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=12
).map(lambda s: s.encode())
# Limits the harness sets on the proxy, so that shapes can cross them in a few bytes.
MAX_REQUEST_LINE = 200
MAX_HEADER_BYTES = 1000
MAX_HEADERS = 12
MAX_BUFFERED_BODY = 1024

bodies = st.one_of(
    st.binary(max_size=64),
    st.integers(MAX_BUFFERED_BODY, 20 * MAX_BUFFERED_BODY).map(
        lambda n: (bytes(range(256)) * (n // 256 + 1))[:n]
    ),
    st.sampled_from(SMUGGLED),
    st.lists(st.sampled_from(SMUGGLED), max_size=3).map(b"".join),
)


@st.composite
def targets(draw: st.DrawFn, method: bytes) -> bytes:
    path = draw(st.text(st.sampled_from(PATH_CHARS), max_size=20)).encode()
    query = draw(st.one_of(st.just(b""), st.text("abc=&%20", max_size=10).map(str.encode)))
    origin = b"/" + path + (b"?" + query if query else b"")
    kind = draw(st.sampled_from(["origin", "origin", "absolute", "asterisk"]))
    if kind == "absolute":
        return b"http://" + draw(hosts) + origin
    if kind == "asterisk" and method == b"OPTIONS":
        return b"*"
    return origin


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` in random chunks: size case, leading zeros, extensions, trailers."""
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    out: list[bytes] = []
    for piece in pieces:
        if not piece:
            continue  # a zero-size chunk would be the last one
        out.append(_size_line(draw, len(piece)) + piece + b"\r\n")
    out.append(_size_line(draw, 0))
    for _ in range(draw(st.integers(0, 2))):
        out.append(b"X-Trailer: " + draw(field_values) + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out)


def _size_line(draw: st.DrawFn, size: int) -> bytes:
    digits = b"%x" % size
    if draw(st.booleans()):
        digits = digits.upper()
    digits = b"0" * draw(st.integers(0, 2)) + digits
    ext = draw(st.sampled_from([b"", b";a", b";a=b", b';name="quoted value"', b";x=1;y=2"]))
    return digits + ext + b"\r\n"


@st.composite
def valid_requests(draw: st.DrawFn) -> Case:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"]))
    if draw(st.integers(0, 9)) == 0:
        method = b"HEAD"
    target = draw(targets(method))
    http10 = draw(st.integers(0, 9)) == 0
    framing = "none" if method == b"HEAD" else draw(st.sampled_from(["none", "length", "chunk"]))
    if http10 and framing == "chunk":
        framing = "length"
    body = b"" if framing == "none" else draw(bodies)
    fields: list[tuple[bytes, tuple[bytes, bytes] | None]] = []
    if not http10 or draw(st.booleans()):
        fields.append((draw(host_names) + b":" + draw(ows) + draw(hosts) + draw(ows), None))
    for _ in range(draw(st.integers(0, 4))):
        name, value = draw(fuzz_names), draw(field_values)
        fields.append((name + b":" + draw(ows) + value + draw(ows), (name, value)))
    if framing == "length":
        cl = draw(st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]))
        digits = b"0" * draw(st.integers(0, 1)) + b"%d" % len(body)
        fields.append((cl + b":" + draw(ows) + digits + draw(ows), None))
    elif framing == "chunk":
        te = draw(st.sampled_from([b"Transfer-Encoding", b"transfer-encoding"]))
        coding = draw(st.sampled_from([b"chunked", b"Chunked", b"CHUNKED"]))
        # llhttp refuses OWS after "chunked" (400: safe, if strict), so none is sent there.
        fields.append((te + b":" + draw(ows) + coding, None))
    close = draw(st.integers(0, 7)) == 0
    keep10 = http10 and draw(st.booleans())
    if close:
        fields.append((b"Connection: close", None))
    elif keep10:
        fields.append((b"Connection: keep-alive", None))
    fields = draw(st.permutations(fields))
    head = b"%s %s HTTP/1.%d\r\n" % (method, target, 0 if http10 else 1)
    head += b"".join(line + b"\r\n" for line, _ in fields) + b"\r\n"
    wire = draw(chunked_body(body)) if framing == "chunk" else body
    return Case(
        raw=head + wire,
        verdict="ok",
        method=method,
        target=target,
        body=body,
        closes=close or (http10 and not keep10),
        fields=tuple(f for _, f in fields if f is not None),
    )


CHUNK = b"Transfer-Encoding: chunked"
POST = b"POST /p HTTP/1.1\r\nHost: a\r\n"

# Shapes that must be refused: name -> the whole request.
BAD: dict[str, bytes] = {
    "cl-and-te": POST + b"Content-Length: 5\r\n" + CHUNK + b"\r\n\r\n0\r\n\r\n",
    "te-and-cl": POST + CHUNK + b"\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "two-cl": POST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "cl-list": POST + b"Content-Length: 3, 4\r\n\r\nabcd",
    "cl-sign": POST + b"Content-Length: +3\r\n\r\nabc",
    "cl-negative": POST + b"Content-Length: -1\r\n\r\n",
    "cl-junk": POST + b"Content-Length: 3x\r\n\r\nabc",
    "cl-huge": POST + b"Content-Length: 99999999999999999999999\r\n\r\n",
    "te-identity": POST + b"Transfer-Encoding: identity\r\n\r\n",
    "te-not-last": POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "te-unknown": POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "chunk-size-junk": POST + CHUNK + b"\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk-size-negative": POST + CHUNK + b"\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
    "chunk-size-overflow": POST + CHUNK + b"\r\n\r\n1ffffffffffffffff\r\nabc\r\n0\r\n\r\n",
    "chunk-size-empty": POST + CHUNK + b"\r\n\r\n\r\nabc\r\n0\r\n\r\n",
    "chunk-size-prefix": POST + CHUNK + b"\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    "chunk-overrun": POST + CHUNK + b"\r\n\r\n3\r\nabcde\r\n0\r\n\r\n",
    "chunk-bad-crlf": POST + CHUNK + b"\r\n\r\n3\r\nabcXY0\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\nX-Fuzz: 1\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: a\r\nX-Fuzz : 1\r\n\r\n",
    "space-in-name": b"GET / HTTP/1.1\r\nHost: a\r\nX Fuzz: 1\r\n\r\n",
    "no-colon": b"GET / HTTP/1.1\r\nHost: a\r\nX-Fuzz\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: a\r\nX-Fuzz: a\x00b\r\n\r\n",
    "cr-in-value": b"GET / HTTP/1.1\r\nHost: a\r\nX-Fuzz: a\rb\r\n\r\n",
    "ctl-in-target": b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad-version": b"GET / HTTX/1.1\r\nHost: a\r\n\r\n",
    "no-version": b"GET /\r\nHost: a\r\n\r\n",
    "lower-method": b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    "connect": b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    "empty-name": b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n",
    "target-too-long": b"GET /" + b"a" * MAX_REQUEST_LINE + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "too-many-fields": b"GET / HTTP/1.1\r\nHost: a\r\n"
    + b"".join(b"X-Fuzz: %d\r\n" % i for i in range(MAX_HEADERS))
    + b"\r\n",
    "fields-too-big": b"GET / HTTP/1.1\r\nHost: a\r\nX-Fuzz: "
    + b"v" * MAX_HEADER_BYTES
    + b"\r\n\r\n",
    "http10-chunked": b"POST /p HTTP/1.0\r\nHost: a\r\n" + CHUNK + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "version-2": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "te-gzip-chunked": POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "te-two-fields": POST + b"Transfer-Encoding: gzip\r\n" + CHUNK + b"\r\n\r\n0\r\n\r\n",
    "chunked-twice": POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
}

# Shapes a server may accept or refuse; when accepted, the body forwarded must be ``body``.
EITHER: dict[str, tuple[bytes, bytes]] = {
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\nX-Fuzz: a\r\n  b\r\n\r\n", b""),
    "te-obs-fold": (POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", b"abc"),
    "bare-lf": (b"POST /p HTTP/1.1\nHost: a\nContent-Length: 3\n\nabc", b"abc"),
    "bare-lf-chunk": (POST + CHUNK + b"\r\n\r\n3\nabc\n0\n\n", b"abc"),
    "same-cl-twice": (POST + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", b"abc"),
    "chunk-size-space": (POST + CHUNK + b"\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", b"abc"),
    "chunk-ext-space": (POST + CHUNK + b"\r\n\r\n3 ; a=b\r\nabc\r\n0\r\n\r\n", b"abc"),
    "version-1.2": (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", b""),
    "leading-crlf": (b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", b""),
    "tab-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX-Fuzz: a\tb\r\n\r\n", b""),
    "high-byte-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX-Fuzz: caf\xe9\r\n\r\n", b""),
}


def target_of(raw: bytes) -> tuple[bytes, bytes]:
    line = raw.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    return parts[0], parts[1] if len(parts) > 1 else b""


def odd_case(shape: str) -> Case:
    """The named shape of ``BAD`` or ``EITHER`` as a case."""
    verdict: Verdict = "bad" if shape in BAD else "either"
    raw, body = (BAD[shape], b"") if shape in BAD else EITHER[shape]
    method, target = target_of(raw)
    closes = b"HTTP/1.0" in raw.split(b"\n", 1)[0]
    return Case(raw, verdict, method, target, body, closes, (), shape)


odd_requests = st.one_of(st.sampled_from(sorted(BAD)), st.sampled_from(sorted(EITHER))).map(
    odd_case
)
requests = st.one_of(valid_requests(), valid_requests(), odd_requests)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Case], list[bytes]]:
    """A pipelined stream (ending with a request that closes), cut at random byte offsets."""
    cases = [*draw(st.lists(requests, min_size=1, max_size=4)), TERMINATOR]
    data = b"".join(c.raw for c in cases)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=5))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return cases, [p for p in pieces if p]
