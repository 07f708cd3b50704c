"""Fuzzing the HTTP/1.1 request path against a model (see tests/component/http_model.py).

Generated pipelined streams (request lines, field sets, Content-Length and chunked bodies cut into
random chunks, smuggling shapes) are written to a real interceptor on 127.0.0.1, split at random
byte offsets, in front of a backend that records every request it receives. Per stream: each
well-formed request is forwarded exactly once, in order, with its method, target, X-Fuzz fields
and body byte for byte, and answered with that backend response; a malformed one is refused
(a 4xx, or 501/505 for a transfer coding or version not implemented) and nothing after it is
forwarded; no request ever turns into two. Half the streams find the backend cold: the first
request is held at the cold-start gate (the rest buffered behind it) until endpoints arrive.

``WAKEWAY_FUZZ_EXAMPLES=5000`` runs more (and random) examples; by default 200 derandomized
ones run, the same on every run.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
import uvloop
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.component.http_model import (
    BAD,
    EITHER,
    MAX_BUFFERED_BODY,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_REQUEST_LINE,
    TERMINATOR,
    Case,
    odd_case,
    streams,
    target_of,
)
from tests.component.recording_backend import RecordingBackend
from tests.interceptor_helpers import TEST_SETTINGS, HostRouter, backend_key, make_target, until
from wakeway.interceptor import Interceptor

pytestmark = pytest.mark.component

EXAMPLES = int(os.environ.get("WAKEWAY_FUZZ_EXAMPLES", "200"))
RANDOM = "WAKEWAY_FUZZ_EXAMPLES" in os.environ
# A refusal is a 4xx, or what RFC 9110 names for a transfer coding or an HTTP version this hop
# does not implement.
REFUSALS_5XX = (501, 505)


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    interceptor: Interceptor
    backend: RecordingBackend
    key: str  # the backend's key in the endpoint view

    def ready(self, ready: bool) -> None:
        self.interceptor.set_endpoints({self.key: [self.backend.addr] if ready else []})


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    loop = uvloop.new_event_loop()
    backend = RecordingBackend()
    interceptor = Interceptor(
        replace(
            TEST_SETTINGS,
            header_read_timeout=5.0,
            max_request_line=MAX_REQUEST_LINE,
            max_header_bytes=MAX_HEADER_BYTES,
            max_headers=MAX_HEADERS,
            max_buffered_body=MAX_BUFFERED_BODY,
        )
    )

    async def start() -> None:
        await backend.start()
        await interceptor.start()
        target = make_target()
        interceptor.set_router(HostRouter({"*": target}))
        interceptor.set_endpoints({backend_key(target): [backend.addr]})

    loop.run_until_complete(start())
    try:
        yield Harness(loop, interceptor, backend, backend_key(make_target()))
    finally:
        loop.run_until_complete(interceptor.drain_and_stop(drain_timeout=0.5))
        loop.run_until_complete(backend.stop())
        loop.close()


@dataclass(frozen=True)
class Response:
    status: int
    fields: tuple[tuple[bytes, bytes], ...]
    body: bytes


def parse_responses(data: bytes, cases: list[Case]) -> list[Response]:
    """The responses in ``data``, the i-th read as the answer to ``cases[i]``."""
    out: list[Response] = []
    for case in cases:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            assert not data, f"a truncated response: {data!r}"
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        fields = tuple(
            (n.strip().lower(), v.strip())
            for n, _, v in (line.partition(b":") for line in lines[1:])
        )
        length = [int(v) for n, v in fields if n == b"content-length"]
        assert len(length) == 1, f"no Content-Length in a response: {head!r}"
        size = 0 if case.method == b"HEAD" else length[0]
        assert len(rest) >= size, f"a response shorter than its Content-Length: {data!r}"
        out.append(Response(status, fields, rest[:size]))
        data = rest[size:]
    assert not data, f"bytes after the last response: {data!r}"
    return out


async def send_and_read(port: int, pieces: list[bytes]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        for piece in pieces:
            if writer.is_closing():
                break
            writer.write(piece)
            await writer.drain()
            # Yield to the loop so the proxy reads this piece alone (not a timed wait).
            for _ in range(3):
                await asyncio.sleep(0)
    except ConnectionError:
        pass  # refused: the proxy may stop reading before the rest of what was sent
    try:
        async with asyncio.timeout(4):
            while chunk := await reader.read(65536):
                received += chunk
    finally:
        writer.close()
    return received


def check(cases: list[Case], responses: list[Response], backend: RecordingBackend) -> None:
    assert backend.errors == []
    forwarded = backend.forwarded
    at = 0
    for i, case in enumerate(cases):
        what = f"request {i} ({case.shape}, {case.verdict}): {case.raw!r}"
        assert i < len(responses), f"no answer to {what}"
        response = responses[i]
        if 400 <= response.status < 500 or response.status in REFUSALS_5XX:
            assert case.verdict != "ok", f"{what} refused with {response.status}: {response}"
            assert (b"connection", b"close") in response.fields, what
            break
        assert response.status == 200, f"{what} answered {response}"
        assert case.verdict != "bad", f"{what} was forwarded: {forwarded[at:]}"
        assert at < len(forwarded), f"{what} answered 200 but not forwarded"
        got = forwarded[at]
        at += 1
        assert (got.method, got.target, got.body) == (case.method, case.target, case.body), what
        if case.method != b"HEAD":
            assert response.body == b"seq=%d" % got.seq, what
        if case.verdict == "ok":
            fuzz = tuple((n, v) for n, v in got.fields if n.lower().startswith(b"x-fuzz"))
            assert fuzz == case.fields, what
        if case.closes:
            break
    assert len(responses) == i + 1, f"answers after the connection should have ended: {responses}"
    assert forwarded[at:] == [], f"forwarded more than was asked: {forwarded[at:]}"


def run_stream(
    harness: Harness, cases: list[Case], pieces: list[bytes], cold: bool = False
) -> None:
    """Send ``pieces`` on one connection; hold what came back to the model of ``cases``.
    ``cold``: the backend has no endpoint until the first request is held at the gate."""
    backend = harness.backend
    backend.forwarded.clear()
    backend.errors.clear()
    interceptor = harness.interceptor
    state = interceptor._require_state()

    async def run() -> list[Response]:
        harness.ready(not cold)
        sending = asyncio.create_task(send_and_read(interceptor.proxy_port, pieces))
        if cold:

            def held_or_answered() -> bool:
                return sending.done() or any(c.held for c in interceptor.counts().values())

            await until(held_or_answered, within=4)
            harness.ready(True)
        data = await sending
        await until(lambda: not state.connections and not backend.busy, within=4)
        return parse_responses(data, cases)

    responses = harness.loop.run_until_complete(run())
    check(cases, responses, backend)
    if cold and responses and responses[0].status == 200:
        assert (b"x-wakeway-cold-start", b"true") in responses[0].fields  # it was held


def single(shape: str) -> tuple[list[Case], list[bytes]]:
    """One named odd shape then the terminator, in one write."""
    case = odd_case(shape)
    return [case, TERMINATOR], [case.raw + TERMINATOR.raw]


def valid(raw: bytes, body: bytes = b"", *, closes: bool = False) -> Case:
    method, target = target_of(raw)
    return Case(raw, "ok", method, target, body, closes)


EMPTY_CHUNKED = valid(b"POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
CLOSE_THEN_MORE = valid(b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", closes=True)


@settings(
    max_examples=EXAMPLES,
    deadline=4000,
    derandomize=not RANDOM,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream=streams(), cold=st.booleans())
# A chunked body that ended before its upstream connection was open lost its last chunk.
@example(stream=([EMPTY_CHUNKED, TERMINATOR], [EMPTY_CHUNKED.raw + TERMINATOR.raw]), cold=False)
@example(stream=([EMPTY_CHUNKED, TERMINATOR], [EMPTY_CHUNKED.raw + TERMINATOR.raw]), cold=True)
# A bad chunk after the head was forwarded got a reset instead of a 400.
@example(stream=single("chunk-size-junk"), cold=False)
@example(
    stream=(single("chunk-overrun")[0], [BAD["chunk-overrun"][:60], BAD["chunk-overrun"][60:]]),
    cold=True,
)
# Pipelining after "Connection: close" (or after a refused request) reset the connection and
# could destroy the answer before the client read it.
@example(stream=([CLOSE_THEN_MORE, TERMINATOR], [CLOSE_THEN_MORE.raw, TERMINATOR.raw]), cold=False)
@example(stream=([*single("two-hosts")[0]], [BAD["two-hosts"], TERMINATOR.raw * 20]), cold=False)
# Codings other than chunked were dropped with Transfer-Encoding; HTTP/0.9 and 2.0 lines were
# forwarded as HTTP/1.1.
@example(stream=single("te-gzip-chunked"), cold=False)
@example(stream=single("te-two-fields"), cold=False)
@example(stream=single("te-identity"), cold=False)
@example(stream=single("no-version"), cold=False)
@example(stream=single("version-2"), cold=False)
def test_request_streams_are_forwarded_exactly_or_refused(
    harness: Harness, stream: tuple[list[Case], list[bytes]], cold: bool
) -> None:
    run_stream(harness, *stream, cold=cold)


@pytest.mark.parametrize("shape", sorted(BAD) + sorted(EITHER))
def test_each_odd_shape_alone(harness: Harness, shape: str) -> None:
    """Every named shape once, whatever the generator picks: refused, or forwarded exactly."""
    run_stream(harness, *single(shape))
