"""Header rules: hop-by-hop removal, forwarding fields, framing, our own responses, settings."""

from __future__ import annotations

import os

import pytest

from wakeway.interceptor.exchange import LazyHeaders
from wakeway.interceptor.headers import (
    HeadFacts,
    body_framing,
    grpc_timeout,
    request_head,
    request_refusal,
    response_head,
    scan,
)
from wakeway.interceptor.pages import (
    accepts_html,
    grpc_status,
    grpc_trailers_only,
    placeholder_response,
    simple_response,
)
from wakeway.interceptor.settings import InterceptorSettings, settings_from_env, worker_count
from wakeway.model.httpso import Placeholder

pytestmark = pytest.mark.unit

H = list[tuple[bytes, bytes]]


def lines(head: bytes) -> list[bytes]:
    return head.split(b"\r\n")


def forward(headers: H, **kw: object) -> list[bytes]:
    facts = scan(headers)
    options: dict[str, object] = {
        "client_ip": b"10.1.2.3",
        "framing": "none",
        "upgrade": False,
        "via": False,
    }
    options.update(kw)
    return lines(request_head(b"GET", b"/p?q=1", headers, facts, **options))  # type: ignore[arg-type]


def test_request_line_and_host_are_preserved() -> None:
    out = forward([(b"Host", b"Example.COM:8080"), (b"Accept", b"*/*")])
    assert out[0] == b"GET /p?q=1 HTTP/1.1"
    assert b"Host: Example.COM:8080" in out
    assert b"Accept: */*" in out
    assert out[-2:] == [b"", b""]


@pytest.mark.parametrize(
    "name",
    [
        b"Connection",
        b"Keep-Alive",
        b"Proxy-Connection",
        b"TE",
        b"Trailer",
        b"Transfer-Encoding",
        b"Upgrade",
        b"Proxy-Authorization",
        b"proxy-anything",
        b"X-Listed",
    ],
)
def test_hop_by_hop_fields_are_dropped(name: bytes) -> None:
    headers = [(b"Host", b"a"), (b"Connection", b"close, x-listed"), (name, b"v")]
    out = forward(headers)
    assert not any(line.lower().startswith(name.lower() + b":") for line in out)


@pytest.mark.parametrize(
    ("incoming", "expected_xff"),
    [
        ([], b"X-Forwarded-For: 10.1.2.3"),
        ([(b"X-Forwarded-For", b"1.1.1.1")], b"X-Forwarded-For: 1.1.1.1, 10.1.2.3"),
        (
            [(b"X-Forwarded-For", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2")],
            b"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.1.2.3",
        ),
    ],
)
def test_x_forwarded_for_is_appended(incoming: H, expected_xff: bytes) -> None:
    out = forward([(b"Host", b"a"), *incoming])
    assert [line for line in out if line.lower().startswith(b"x-forwarded-for")] == [expected_xff]


def test_forwarded_proto_and_host_are_set_only_when_absent() -> None:
    out = forward([(b"Host", b"a.example")])
    assert b"X-Forwarded-Proto: http" in out
    assert b"X-Forwarded-Host: a.example" in out
    out = forward(
        [(b"Host", b"a"), (b"X-Forwarded-Proto", b"https"), (b"X-Forwarded-Host", b"orig")]
    )
    assert b"X-Forwarded-Proto: https" in out
    assert b"X-Forwarded-Proto: http" not in out
    assert [line for line in out if line.startswith(b"X-Forwarded-Host")] == [
        b"X-Forwarded-Host: orig"
    ]


def test_via_is_optional() -> None:
    assert b"Via: 1.1 wakeway" not in forward([(b"Host", b"a")])
    assert b"Via: 1.1 wakeway" in forward([(b"Host", b"a")], via=True)


def test_request_framing_and_upgrade() -> None:
    chunked = forward([(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")], framing="chunked")
    assert b"Transfer-Encoding: chunked" in chunked
    length = forward([(b"Host", b"a"), (b"Content-Length", b"5")], framing="length")
    assert b"Content-Length: 5" in length
    ws = forward(
        [(b"Host", b"a"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")], upgrade=True
    )
    assert b"Connection: upgrade" in ws
    assert b"Upgrade: websocket" in ws


def test_scan_facts() -> None:
    facts = scan(
        [
            (b"HOST", b"a"),
            (b"connection", b"Keep-Alive, Upgrade"),
            (b"Content-Length", b" 12 "),
            (b"Upgrade", b"h2c"),
        ]
    )
    assert facts.host == b"a"
    assert facts.hosts == 1
    assert facts.connection == frozenset({b"keep-alive", b"upgrade"})
    assert facts.content_length == b"12"
    assert facts.upgrade == b"h2c"
    assert not facts.chunked


@pytest.mark.parametrize(
    ("version", "headers", "status"),
    [
        ("1.1", [(b"Host", b"a")], None),
        ("1.0", [], None),
        ("1.1", [(b"Host", b"a"), (b"Transfer-Encoding", b"Chunked")], None),
        ("1.1", [(b"Host", b"a"), (b"Transfer-Encoding", b" , chunked")], None),
        ("1.1", [], 400),
        ("1.1", [(b"Host", b"a"), (b"host", b"b")], 400),
        ("0.9", [(b"Host", b"a")], 400),
        ("2.0", [(b"Host", b"a")], 505),
        ("1.0", [(b"Transfer-Encoding", b"chunked")], 400),
        ("1.1", [(b"Host", b"a"), (b"Transfer-Encoding", b"identity")], 400),
        ("1.1", [(b"Host", b"a"), (b"Transfer-Encoding", b"xchunked")], 400),
        ("1.1", [(b"Host", b"a"), (b"Transfer-Encoding", b"chunked, gzip")], 400),
        ("1.1", [(b"Host", b"a"), (b"Transfer-Encoding", b"chunked, chunked")], 400),
        ("1.1", [(b"Host", b"a"), (b"Transfer-Encoding", b"gzip, chunked")], 501),
        (
            "1.1",
            [(b"Host", b"a"), (b"Transfer-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")],
            501,
        ),
        (
            "1.1",
            [(b"Host", b"a"), (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"3")],
            400,
        ),
    ],
)
def test_request_refusal(version: str, headers: H, status: int | None) -> None:
    refusal = request_refusal(scan(headers), version)
    assert (refusal[0] if refusal else None) == status, refusal


@pytest.mark.parametrize(
    ("status", "method", "headers", "http11", "expected"),
    [
        (200, b"GET", [(b"Content-Length", b"3")], True, ("length", "length")),
        (200, b"GET", [(b"Transfer-Encoding", b"chunked")], True, ("chunked", "chunked")),
        (200, b"GET", [(b"Transfer-Encoding", b"chunked")], False, ("chunked", "close")),
        (200, b"GET", [], True, ("close", "chunked")),
        (200, b"GET", [], False, ("close", "close")),
        (200, b"HEAD", [(b"Content-Length", b"3")], True, ("none", "none")),
        (204, b"GET", [], True, ("none", "none")),
        (304, b"GET", [(b"Content-Length", b"3")], True, ("none", "none")),
        (103, b"GET", [], True, ("none", "none")),
    ],
)
def test_body_framing(
    status: int, method: bytes, headers: H, http11: bool, expected: tuple[str, str]
) -> None:
    assert body_framing(status, method, scan(headers), client_http11=http11) == expected


def test_response_head_rules() -> None:
    headers = [
        (b"Content-Type", b"text/plain"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Connection", b"keep-alive, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Keep-Alive", b"timeout=5"),
    ]
    out = lines(
        response_head(
            200,
            b"OK",
            headers,
            scan(headers),
            framing="chunked",
            keep_alive=False,
            cold_start=True,
            via=True,
        )
    )
    assert out[0] == b"HTTP/1.1 200 OK"
    assert b"Content-Type: text/plain" in out
    assert b"Transfer-Encoding: chunked" in out
    assert b"X-Wakeway-Cold-Start: true" in out
    assert b"Connection: close" in out
    assert b"Via: 1.1 wakeway" in out
    assert not any(line.startswith((b"X-Hop", b"Keep-Alive")) for line in out)
    head = [(b"Content-Length", b"42")]
    out = lines(
        response_head(
            200,
            b"OK",
            head,
            scan(head),
            framing="none",
            keep_alive=True,
            cold_start=None,
            via=False,
        )
    )
    assert b"Content-Length: 42" in out  # HEAD keeps the resource's length
    assert not any(line.startswith(b"X-Wakeway") for line in out)


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,*/*;q=0.8", True),
        ("TEXT/HTML", True),
        ("application/json", False),
        ("*/*", False),
        ("text/html;q=0", False),
        ("text/html; q=0.5", True),
        (None, False),
        ("", False),
    ],
)
def test_accepts_html(accept: str | None, html: bool) -> None:
    assert accepts_html(accept) is html


def test_placeholder_for_browsers_refreshes_itself() -> None:
    ph = Placeholder(enabled=True, status=503, body="<warming>", refresh_seconds=4)
    raw = placeholder_response(
        ph, "ns/a", accept="text/html", keep_alive=True, cold_start=True, head_only=False
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"Refresh: 4" in head
    assert b"Retry-After: 4" in head
    assert b"X-Wakeway-Cold-Start: true" in head
    assert b'<meta http-equiv="refresh" content="4">' in body
    assert b"&lt;warming&gt;" in body  # the configured text is escaped
    raw = placeholder_response(
        ph, "ns/a", accept="*/*", keep_alive=False, cold_start=None, head_only=False
    )
    assert raw.endswith(b"\r\n\r\n<warming>")
    assert b"Connection: close" in raw


def test_simple_response_counts_bytes_and_omits_body_for_head() -> None:
    raw = simple_response(404, "no route ü\n")
    assert b"Content-Length: 12\r\n" in raw
    assert raw.endswith("no route ü\n".encode())
    head_only = simple_response(404, "x", head_only=True)
    assert head_only.endswith(b"\r\n\r\n")
    assert b"Content-Length: 1" in head_only


def test_settings_from_env() -> None:
    s = settings_from_env(
        {
            "WAKEWAY_INTERCEPTOR_LISTEN_PORT": "9000",
            "WAKEWAY_INTERCEPTOR_CONDITION_WAIT": "30",
            "WAKEWAY_INTERCEPTOR_VIA": "true",
            "WAKEWAY_INTERCEPTOR_REQUEST_TIMEOUT": "120",
            "UNRELATED": "x",
        }
    )
    assert (s.listen_port, s.condition_wait, s.via, s.request_timeout) == (9000, 30.0, True, 120.0)
    assert (
        settings_from_env({"WAKEWAY_INTERCEPTOR_REQUEST_TIMEOUT": "none"}).request_timeout is None
    )
    assert settings_from_env({}) == InterceptorSettings()
    with pytest.raises(ValueError, match="WAKEWAY_INTERCEPTOR_VIA"):
        settings_from_env({"WAKEWAY_INTERCEPTOR_VIA": "maybe"})
    with pytest.raises(ValueError, match="WAKEWAY_INTERCEPTOR_CONNECT_TIMEOUT"):
        settings_from_env({"WAKEWAY_INTERCEPTOR_CONNECT_TIMEOUT": "-1"})
    assert settings_from_env({"WAKEWAY_INTERCEPTOR_WORKERS": "4"}).workers == 4
    assert settings_from_env({"WAKEWAY_INTERCEPTOR_WORKERS": "auto"}).workers == 0
    assert worker_count(0) == len(os.sched_getaffinity(0))
    assert worker_count(3) == 3
    with pytest.raises(ValueError, match="WAKEWAY_INTERCEPTOR_WORKERS"):
        settings_from_env({"WAKEWAY_INTERCEPTOR_WORKERS": "many"})
    with pytest.raises(ValueError, match="workers"):
        InterceptorSettings(workers=-1)
    with pytest.raises(ValueError, match="workers_listener"):
        InterceptorSettings(workers_listener="inetd")
    with pytest.raises(ValueError, match="tls_secrets"):
        InterceptorSettings(workers=2, tls_secrets=True)


def test_routing_sees_a_repeated_header_as_one_comma_joined_value() -> None:
    """RFC 9110 section 5.3: a field sent twice means its values joined by commas; routing
    matches on that, names compared without case."""
    headers = LazyHeaders([(b"X-Version", b"a"), (b"x-version", b"b"), (b"Other", b"c")])
    assert headers["x-version"] == "a, b"
    assert headers.get("other") == "c"
    assert headers.get("missing") is None
    assert sorted(headers) == ["other", "x-version"]
    assert len(headers) == 2


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"10S", 10.0),
        (b"300m", 0.3),
        (b"2M", 120.0),
        (b"1H", 3600.0),
        (b"5u", 1e-3),  # below a millisecond: a millisecond
        (b"", None),
        (b"10", None),
        (b"10x", None),
        (b"123456789S", None),  # more than 8 digits
        (b"-1S", None),
    ],
)
def test_grpc_timeout(value: bytes, seconds: float | None) -> None:
    got = grpc_timeout([(b"content-type", b"application/grpc"), (b"grpc-timeout", value)])
    assert got == (None if seconds is None else pytest.approx(seconds))
    assert grpc_timeout([(b"content-type", b"application/grpc")]) is None


@pytest.mark.parametrize(
    ("status", "deadline", "code"),
    [
        (504, True, 4),
        (503, True, 4),
        (504, False, 14),
        (503, False, 14),
        (502, False, 14),
        (404, False, 12),
        (400, False, 13),
        (431, False, 2),
    ],
)
def test_grpc_status_of_our_answers(status: int, deadline: bool, code: int) -> None:
    assert grpc_status(status, deadline=deadline) == code


def test_grpc_trailers_only_percent_encodes_the_message() -> None:
    fields = dict(grpc_trailers_only(14, b"app: 50% ready \xc3\xa9\n", cold_start=True))
    assert fields[b":status"] == b"200"
    assert fields[b"content-type"] == b"application/grpc"
    assert fields[b"grpc-status"] == b"14"
    assert fields[b"grpc-message"] == b"app: 50%25 ready %C3%A9"
    assert fields[b"x-wakeway-cold-start"] == b"true"


# Fields of the same length as the ones scan() reads: only the name decides, never the length.
LOOKALIKES = [
    (b"From", b"x"),  # 4, like Host
    (b"Keep-Alive", b"timeout=5"),  # 10, like Connection
    (b"Accept-Charset", b"utf-8"),  # 14, like Content-Length
    (b"If-Modified-Since", b"Mon"),  # 17, like Transfer-Encoding
    (b"Referer", b"/r"),  # 7, like Upgrade
]


def test_scan_reads_the_fields_it_needs_by_name_and_nothing_else() -> None:
    facts = scan(LOOKALIKES)
    assert facts == HeadFacts(frozenset(), None, False, (), None, 0, None)
    facts = scan(
        [
            *LOOKALIKES,
            (b"HOST", b"h.example"),
            (b"connection", b"Keep-Alive, , X-Hop"),
            (b"Content-LENGTH", b" 12 "),
            (b"transfer-encoding", b"gzip, , Chunked"),
            (b"UPGRADE", b" websocket "),
        ]
    )
    assert facts == HeadFacts(
        frozenset({b"keep-alive", b"x-hop"}),
        b"12",
        True,
        (b"gzip", b"chunked"),
        b"websocket",
        1,
        b"h.example",
    )


def test_scan_without_fields_reads_absent_as_none() -> None:
    assert scan([]) == HeadFacts(frozenset(), None, False, (), None, 0, None)


def _facts(**fields: bytes) -> HeadFacts:
    return scan([(k.replace("_", "-").encode(), v) for k, v in fields.items()])


@pytest.mark.parametrize(
    ("facts", "version", "refusal"),
    [
        (_facts(Host=b"h"), "1.1", None),
        (_facts(), "1.0", None),
        (_facts(Host=b"h"), "0.9", (400, "the request line has no HTTP version")),
        (_facts(Host=b"h"), "2.0", (505, "HTTP/2.0 is not supported; use HTTP/1.1")),
        (_facts(), "1.1", (400, "a request needs exactly one Host header field")),
        (
            scan([(b"Host", b"a"), (b"Host", b"b")]),
            "1.0",
            (400, "a request needs exactly one Host header field"),
        ),
        (
            _facts(Transfer_Encoding=b"chunked"),
            "1.0",
            (400, "Transfer-Encoding in an HTTP/1.0 request"),
        ),
        (
            _facts(Host=b"h", Transfer_Encoding=b"chunked", Content_Length=b"3"),
            "1.1",
            (400, "Content-Length together with Transfer-Encoding"),
        ),
        (
            _facts(Host=b"h", Transfer_Encoding=b"chunked, gzip"),
            "1.1",
            (400, "Transfer-Encoding does not end with chunked"),
        ),
        (
            _facts(Host=b"h", Transfer_Encoding=b"chunked, chunked"),
            "1.1",
            (400, "Transfer-Encoding applies chunked more than once"),
        ),
        (
            _facts(Host=b"h", Transfer_Encoding=b"gzip, chunked, chunked"),
            "1.1",
            (400, "Transfer-Encoding applies chunked more than once"),
        ),
        (
            _facts(Host=b"h", Transfer_Encoding=b"gzip, deflate, chunked"),
            "1.1",
            (501, "transfer coding gzip, deflate is not supported"),
        ),
        (_facts(Host=b"h", Transfer_Encoding=b"chunked"), "1.1", None),
    ],
)
def test_request_refusal_says_exactly_why(
    facts: HeadFacts, version: str, refusal: tuple[int, str] | None
) -> None:
    assert request_refusal(facts, version) == refusal


def _response(status: int, headers: list[tuple[bytes, bytes]], **kw: object) -> bytes:
    options: dict[str, object] = {
        "framing": "length",
        "keep_alive": True,
        "cold_start": None,
        "via": False,
        **kw,
    }
    return response_head(status, b"", headers, scan(headers), **options)  # type: ignore[arg-type]


def test_response_head_exact_bytes_for_a_switch_and_for_an_ordinary_answer() -> None:
    upgrade = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), (b"X-A", b"1")]
    assert _response(101, upgrade, framing="none") == (
        b"HTTP/1.1 101 -\r\nX-A: 1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    # An Upgrade field on anything but 101 is hop-by-hop: dropped, not echoed.
    assert _response(200, [*upgrade, (b"Content-Length", b"0")]) == (
        b"HTTP/1.1 200 -\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n"
    )


def test_response_head_drops_proxy_fields_and_a_length_it_reframes() -> None:
    headers = [
        (b"Proxy-Authenticate", b"Basic"),
        (b"proxy-x", b"1"),
        (b"Proxied-By", b"kept"),
        (b"Content-Length", b"5"),
        (b"X-After", b"kept too"),
    ]
    head = _response(200, headers, framing="chunked")
    assert head == (
        b"HTTP/1.1 200 -\r\nProxied-By: kept\r\nX-After: kept too\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )


@pytest.mark.parametrize(("cold", "line"), [(True, b"true"), (False, b"false")])
def test_response_head_says_whether_the_request_waited_for_a_cold_start(
    cold: bool, line: bytes
) -> None:
    head = _response(200, [(b"Content-Length", b"0")], cold_start=cold)
    assert b"\r\nX-Wakeway-Cold-Start: " + line + b"\r\n" in head
    assert b"X-Wakeway-Cold-Start" not in _response(200, [(b"Content-Length", b"0")])


def test_response_head_closes_when_asked_except_on_a_switch() -> None:
    assert b"Connection: close\r\n" in _response(200, [], keep_alive=False)
    upgrade = [(b"Upgrade", b"h2c"), (b"Connection", b"Upgrade")]
    assert b"close" not in _response(101, upgrade, framing="none", keep_alive=False)
