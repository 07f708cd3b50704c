"""A small h2c backend for the tests (the ``h2`` library on asyncio streams): every request is
answered with what it was, as JSON (with the names of the fields HPACK carried as never
indexed), followed by a trailer field; ``goaway_after`` makes each
connection send GOAWAY after that many answers (and stay open); ``max_streams`` is the
SETTINGS_MAX_CONCURRENT_STREAMS it announces, ``answer_after`` how many requests each connection
holds until it answers them all (so streams stay open together)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, StreamEnded, TrailersReceived
from h2.settings import SettingCodes, Settings
from hpack import NeverIndexedHeaderTuple


@dataclass
class _Request:
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)


class H2Backend:
    def __init__(
        self,
        *,
        goaway_after: int | None = None,
        max_streams: int | None = None,
        answer_after: int = 1,
    ) -> None:
        self.goaway_after = goaway_after
        self.max_streams = max_streams
        self.answer_after = answer_after
        self.most_open = 0  # the most streams one connection had open at once
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        if self.max_streams is not None:
            h2.local_settings = Settings(
                client=False,
                initial_values={SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams},
            )
        h2.initiate_connection()
        ended: list[int] = []
        writer.write(h2.data_to_send())
        requests: dict[int, _Request] = {}
        answered = 0
        try:
            while data := await reader.read(65536):
                for event in h2.receive_data(data):
                    sid = getattr(event, "stream_id", 0) or 0
                    if isinstance(event, RequestReceived):
                        requests[sid] = _Request(list(event.headers or []))
                    elif isinstance(event, DataReceived):
                        requests[sid].body += event.data or b""
                        h2.acknowledge_received_data(event.flow_controlled_length or 0, sid)
                    elif isinstance(event, TrailersReceived):
                        requests[sid].trailers = list(event.headers or [])
                    elif isinstance(event, StreamEnded):
                        self.most_open = max(self.most_open, h2.open_inbound_streams)
                        ended.append(sid)
                        if len(ended) < self.answer_after:
                            continue
                        for done in ended:
                            self._answer(h2, done, requests.pop(done))
                            answered += 1
                            if answered == self.goaway_after:
                                h2.close_connection(last_stream_id=done)
                        ended.clear()
                writer.write(h2.data_to_send())
        finally:
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    def _answer(h2: H2Connection, sid: int, request: _Request) -> None:
        def text(fields: list[tuple[bytes, bytes]]) -> list[list[str]]:
            return [[n.decode(), v.decode()] for n, v in fields]

        body = json.dumps(
            {
                "headers": text(request.headers),
                "body": request.body.decode("latin-1") if len(request.body) < 4096 else "",
                "size": len(request.body),
                "sha256": hashlib.sha256(request.body).hexdigest(),
                "trailers": text(request.trailers),
                "never_indexed": [
                    f[0].decode() for f in request.headers if isinstance(f, NeverIndexedHeaderTuple)
                ],
            }
        ).encode()
        h2.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/json")])
        h2.send_data(sid, body)  # small enough for the default windows
        h2.send_headers(sid, [(b"x-echo-trailer", b"yes")], end_stream=True)
