"""A small asyncio HTTP/2 (h2c) client for the tests, on the ``h2`` library: prior knowledge or
``Upgrade: h2c``, concurrent streams, trailers, resets, and flow control the test drives
(``auto_ack=False`` leaves the response windows closed until :meth:`H2Client.ack`)."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)

Fields = list[tuple[bytes, bytes]]


@dataclass
class H2Response:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    reset: int | None = None  # the RST_STREAM error code, if reset
    done: asyncio.Event = field(default_factory=asyncio.Event)
    unacked: int = 0


class H2Client:
    def __init__(self, port: int, *, auto_ack: bool = True) -> None:
        self.port = port
        self.auto_ack = auto_ack
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.streams: dict[int, H2Response] = {}
        self.goaway: tuple[int, int] | None = None  # (last stream id, error code)
        self._frames = bytearray()
        self.closed = asyncio.Event()
        self.changed = asyncio.Event()  # set on every frame read
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        # Request bodies the windows hold back: data, end the stream after it, trailers.
        self._pending: dict[int, tuple[bytearray, bool, Fields | None]] = {}

    async def connect(
        self, *, upgrade_path: str | None = None, tls: ssl.SSLContext | None = None
    ) -> H2Response | None:
        """Prior knowledge, or ``Upgrade: h2c`` on a GET of ``upgrade_path`` (its response,
        stream 1, is returned); ``tls``: h2 over TLS (the context offers ALPN ``h2``) to the
        server name app.example.com."""
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1",
            self.port,
            ssl=tls,
            server_hostname=None if tls is None else "app.example.com",
        )
        if upgrade_path is None:
            self.h2.initiate_connection()
            self._flush()
            self._task = asyncio.create_task(self._read())
            return None
        token = self.h2.initiate_upgrade_connection()
        assert token is not None
        self._writer.write(
            b"GET " + upgrade_path.encode() + b" HTTP/1.1\r\nHost: app.example.com\r\n"
            b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
            b"HTTP2-Settings: " + token.rstrip(b"=") + b"\r\n\r\n"
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        response = self.streams[1] = H2Response()
        self._flush()
        self._task = asyncio.create_task(self._read())
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Fields | None = None,
        body: bytes | None = None,
        end: bool = True,
        trailers: Fields | None = None,
    ) -> tuple[int, H2Response]:
        sid = self.h2.get_next_available_stream_id()
        fields: Fields = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", b"app.example.com"),
            (b":path", path.encode()),
            *(headers or []),
        ]
        response = self.streams[sid] = H2Response()
        only_head = body is None and trailers is None and end
        self.h2.send_headers(sid, fields, end_stream=only_head)
        if body is not None or trailers is not None:
            self.send_body(sid, body or b"", end=end, trailers=trailers)
        self._flush()
        return sid, response

    def send_body(
        self, sid: int, body: bytes, *, end: bool, trailers: Fields | None = None
    ) -> None:
        """Sends what the windows admit now, the rest (then the trailers) as they open."""
        self._pending[sid] = (bytearray(body), end, trailers)
        self._pump_stream(sid)

    def reset(self, sid: int) -> None:
        self.h2.reset_stream(sid, ErrorCodes.CANCEL)
        self._flush()

    def ack(self, sid: int) -> None:
        response = self.streams[sid]
        if response.unacked:
            self.h2.acknowledge_received_data(response.unacked, sid)
            response.unacked = 0
            self._flush()

    async def wait_for(self, what: object, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not callable(what) or not what():
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _pump_stream(self, sid: int) -> None:
        pending = self._pending
        if sid not in pending:
            return
        data, end, trailers = pending[sid]
        while data:
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if room <= 0:
                return
            piece = bytes(data[:room])
            del data[:room]
            self.h2.send_data(sid, piece)
        del pending[sid]
        if trailers is not None:
            self.h2.send_headers(sid, trailers, end_stream=True)
        elif end:
            self.h2.end_stream(sid)

    def _flush(self) -> None:
        out = self.h2.data_to_send()
        if out and self._writer is not None:
            self._writer.write(out)

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for event in self.h2.receive_data(self._without_goaway(data)):
                    self._on(event)
                for sid in list(self._pending):
                    self._pump_stream(sid)
                self._flush()
                self.changed.set()
        finally:
            self.closed.set()
            self.changed.set()

    def _without_goaway(self, data: bytes) -> bytes:
        """The frames in ``data`` less GOAWAY, which is recorded: h2's state machine takes
        nothing after a GOAWAY, while a server draining gracefully still answers the streams
        it admitted (RFC 9113 section 6.8)."""
        buf = self._frames
        buf += data
        out = bytearray()
        while len(buf) >= 9:
            size = 9 + int.from_bytes(buf[:3], "big")
            if len(buf) < size:
                break
            if buf[3] == 0x7:
                self.goaway = (
                    int.from_bytes(buf[9:13], "big") & 0x7FFFFFFF,
                    int.from_bytes(buf[13:17], "big"),
                )
            else:
                out += buf[:size]
            del buf[:size]
        return bytes(out)

    def _on(self, event: Event) -> None:
        sid = getattr(event, "stream_id", 0) or 0
        response = self.streams.get(sid)
        if isinstance(event, ResponseReceived) and response is not None:
            headers = dict(event.headers or [])
            response.status = int(headers.pop(b":status"))
            response.headers = headers
        elif isinstance(event, DataReceived) and response is not None:
            response.body += event.data or b""
            response.unacked += event.flow_controlled_length or 0
            if self.auto_ack:
                self.ack(sid)
        elif isinstance(event, TrailersReceived) and response is not None:
            response.trailers = dict(event.headers or [])
        elif isinstance(event, StreamEnded) and response is not None:
            response.done.set()
        elif isinstance(event, StreamReset) and response is not None:
            response.reset = event.error_code
            response.done.set()
        elif isinstance(event, ConnectionTerminated):
            self.goaway = (event.last_stream_id or 0, int(event.error_code or 0))
