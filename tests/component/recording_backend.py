"""A raw HTTP/1.1 backend that records exactly what the proxy forwards.

It parses strictly, with its own code (not the proxy's parser), what a proxy may send upstream:
one request line, header fields, and a body framed by Content-Length or chunked. Each complete
request is recorded (method, target, fields, body bytes) and answered 200 with its sequence
number as the body; anything else a proxy should never send is recorded as an error.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass

TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
FIELD_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")
REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) HTTP/1\.1")


@dataclass(frozen=True, slots=True)
class Forwarded:
    method: bytes
    target: bytes
    fields: tuple[tuple[bytes, bytes], ...]
    body: bytes
    seq: int


class BadUpstreamRequest(Exception):
    pass


class RecordingBackend:
    def __init__(self) -> None:
        self.forwarded: list[Forwarded] = []
        self.errors: list[str] = []
        self.busy = 0  # connections in the middle of a request
        self.seq = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    async def start(self) -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock, limit=1 << 20)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if exc.partial:
                        self.errors.append(f"a connection closed inside a head: {exc.partial!r}")
                    return
                self.busy += 1
                try:
                    request = await self._read_request(head, reader)
                except asyncio.IncompleteReadError:
                    return  # the proxy gave up on this request mid-body: never complete
                except BadUpstreamRequest as exc:
                    self.errors.append(str(exc))
                    return
                finally:
                    self.busy -= 1
                self.forwarded.append(request)
                body = b"" if request.method == b"HEAD" else b"seq=%d" % request.seq
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(b"seq=%d" % request.seq)
                    + body
                )
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    async def _read_request(self, head: bytes, reader: asyncio.StreamReader) -> Forwarded:
        lines = head[:-4].split(b"\r\n")
        line = REQUEST_LINE.fullmatch(lines[0])
        if line is None:
            raise BadUpstreamRequest(f"bad request line upstream: {lines[0]!r}")
        fields: list[tuple[bytes, bytes]] = []
        for raw in lines[1:]:
            name, colon, value = raw.partition(b":")
            if not colon or TOKEN.fullmatch(name) is None:
                raise BadUpstreamRequest(f"bad field line upstream: {raw!r}")
            value = value.strip(b" \t")
            if FIELD_VALUE.fullmatch(value) is None:
                raise BadUpstreamRequest(f"bad field value upstream: {raw!r}")
            fields.append((name, value))
        lengths = [v for n, v in fields if n.lower() == b"content-length"]
        codings = [v for n, v in fields if n.lower() == b"transfer-encoding"]
        hosts = [v for n, v in fields if n.lower() == b"host"]
        if len(hosts) > 1:
            raise BadUpstreamRequest(f"{len(hosts)} Host fields upstream")
        if codings and lengths:
            raise BadUpstreamRequest("Content-Length and Transfer-Encoding upstream")
        if codings:
            if codings != [b"chunked"]:
                raise BadUpstreamRequest(f"Transfer-Encoding upstream: {codings!r}")
            body = await _read_chunked(reader)
        elif lengths:
            if len(lengths) > 1 or not lengths[0].isdigit():
                raise BadUpstreamRequest(f"Content-Length upstream: {lengths!r}")
            body = await reader.readexactly(int(lengths[0]))
        else:
            body = b""
        self.seq += 1
        return Forwarded(line[1], line[2], tuple(fields), body, self.seq)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = (await reader.readuntil(b"\r\n"))[:-2]
        if re.fullmatch(rb"[0-9a-fA-F]{1,16}", size_line) is None:
            raise BadUpstreamRequest(f"bad chunk size upstream: {size_line!r}")
        size = int(size_line, 16)
        if size == 0:
            if await reader.readexactly(2) != b"\r\n":
                raise BadUpstreamRequest("trailer fields or junk after the last chunk upstream")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise BadUpstreamRequest("chunk data not followed by CRLF upstream")
