"""TLS on the proxy listener, with certificates the test makes: TLS 1.2 at least, ALPN h2 to
HTTP/2 and http/1.1 (or none) to HTTP/1.1, the certificate chosen by SNI, certificate files
reloaded while a connection made before keeps working, and a request held over TLS for a cold
backend."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.certs import TestCA, peer_names, peer_serial
from tests.h2_client import H2Client
from tests.interceptor_helpers import (
    Backend,
    HostRouter,
    StartInterceptor,
    backend_key,
    make_target,
    until,
    warm_proxy,
)
from wakeway.interceptor import Interceptor

pytestmark = pytest.mark.component

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Tls:
    """What every test here uses: a CA, a folder for its files, the interceptor's starter and a
    ready backend; the connections it makes are closed at teardown."""

    ca: TestCA
    dir: Path
    start: StartInterceptor
    backend: Backend
    conns: list[Conn] = field(default_factory=list)

    def pair(self, stem: str = "app", *names: str) -> tuple[str, str]:
        cert, key, _ = self.ca.write(self.dir, stem, *(names or ("app.example.com",)))
        return cert, key

    async def proxy(self, *pairs: tuple[str, str], **kw: Any) -> Interceptor:
        """An interceptor serving TLS with ``pairs`` (default: one for app.example.com) to
        the warm backend."""
        certificates = pairs or (self.pair(),)
        interceptor, _, _ = await warm_proxy(
            self.start, self.backend, tls_certificates=certificates, **kw
        )
        return interceptor

    async def connect(
        self, port: int, ctx: ssl.SSLContext | None = None, name: str | None = "app.example.com"
    ) -> Conn:
        ctx = ctx or self.ca.client()
        conn = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name)
        self.conns.append(conn)
        return conn

    async def new_connections_get(self, port: int, serial: int) -> set[int]:
        """Connect until a new connection gets the certificate numbered ``serial`` (10 s at
        most); the serials seen on the way."""
        seen: list[int] = []
        for _ in range(200):
            seen.append(peer_serial(peer_der(await self.connect(port))))
            if seen[-1] == serial:
                return set(seen)
            await asyncio.sleep(0.05)
        raise AssertionError(f"still served {seen[-1]}, not {serial}")


@pytest.fixture
async def tls(
    start_interceptor: StartInterceptor, backend: Backend, tmp_path: Path
) -> AsyncIterator[Tls]:
    made = Tls(TestCA.make(), tmp_path, start_interceptor, backend)
    yield made
    for _, writer in made.conns:
        writer.close()


async def get(conn: Conn, path: str = "/echo") -> tuple[bytes, dict[str, Any]]:
    """One keep-alive HTTP/1.1 GET: (status line, the echoed request as JSON)."""
    reader, writer = conn
    writer.write(f"GET {path} HTTP/1.1\r\nHost: app.example.com\r\n\r\n".encode())
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0], json.loads(body)


def forwarded_proto(echo: dict[str, Any]) -> str:
    proto: str = {k.lower(): v for k, v in echo["headers"]}["x-forwarded-proto"]
    return proto


def peer_der(conn: Conn) -> bytes | None:
    ssl_object = conn[1].get_extra_info("ssl_object")
    assert ssl_object is not None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_below_1_2_is_refused(tls: Tls) -> None:
    port = (await tls.proxy()).proxy_port
    old = tls.ca.client()
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with pytest.raises((ssl.SSLError, ConnectionResetError)) as refused:
        await tls.connect(port, old)
    # The server's alert or reset, not this client giving up before it asked.
    if isinstance(refused.value, ssl.SSLError):
        assert "protocol version" in str(refused.value).lower()
    tls12 = tls.ca.client()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    conn = await tls.connect(port, tls12)
    assert conn[1].get_extra_info("ssl_object").version() == "TLSv1.2"
    status, _ = await get(conn)
    assert status.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("alpn", [("http/1.1",), ()], ids=["alpn-http1.1", "no-alpn"])
async def test_http11_over_tls_is_forwarded_as_https(tls: Tls, alpn: tuple[str, ...]) -> None:
    interceptor = await tls.proxy()
    conn = await tls.connect(interceptor.proxy_port, tls.ca.client(alpn))
    selected = conn[1].get_extra_info("ssl_object").selected_alpn_protocol()
    assert selected == (alpn[0] if alpn else None)
    for n in range(2):  # keep-alive over TLS
        status, echo = await get(conn, f"/echo?n={n}")
        assert status.startswith(b"HTTP/1.1 200 ")
        assert echo["path"] == f"/echo?n={n}"
        assert forwarded_proto(echo) == "https"


async def test_alpn_h2_speaks_http2(tls: Tls) -> None:
    interceptor = await tls.proxy()
    client = H2Client(interceptor.proxy_port)
    await client.connect(tls=tls.ca.client(("h2", "http/1.1")))
    try:
        assert client._writer is not None
        assert client._writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        responses = [client.request("GET", f"/echo?s={i}")[1] for i in range(3)]
        for i, response in enumerate(responses):
            await asyncio.wait_for(response.done.wait(), 10)
            assert response.status == 200
            echo = json.loads(bytes(response.body))
            assert echo["path"] == f"/echo?s={i}"
            assert forwarded_proto(echo) == "https"
    finally:
        await client.close()


async def test_sni_picks_the_certificate(tls: Tls) -> None:
    interceptor = await tls.proxy(
        tls.pair("default", "default.test"),
        tls.pair("app", "app.example.com", "api.example.com"),
        tls.pair("wild", "*.wild.test"),
        tls.pair("exact", "exact.wild.test"),
    )
    port = interceptor.proxy_port
    verified = tls.ca.client()  # checks the name: the certificate must be the one for it
    cases = {
        "app.example.com": ["app.example.com", "api.example.com"],
        "API.example.com": ["app.example.com", "api.example.com"],
        "a.wild.test": ["*.wild.test"],
        "exact.wild.test": ["exact.wild.test"],  # an exact name wins over a wildcard
    }
    for name, names in cases.items():
        conn = await tls.connect(port, verified, name)
        assert peer_names(peer_der(conn)) == names, name
    unchecked = tls.ca.client()
    unchecked.check_hostname = False
    others: list[str | None] = ["other.test", "a.b.wild.test", None]
    for other in others:  # a wildcard covers one label only
        conn = await tls.connect(port, unchecked, other)
        assert peer_names(peer_der(conn)) == ["default.test"], other
        status, _ = await get(conn)
        assert status.startswith(b"HTTP/1.1 200 ")


async def test_changed_files_serve_new_connections_while_old_ones_keep_working(
    tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "wakeway.interceptor.tls")
    cert, key, first = tls.ca.write(tls.dir, "app", "app.example.com")
    port = (await tls.proxy((cert, key), tls_reload_interval=0.05)).proxy_port
    old = await tls.connect(port)
    assert peer_serial(peer_der(old)) == first
    _, _, second = tls.ca.write(tls.dir, "app", "app.example.com")
    assert second != first
    assert await tls.new_connections_get(port, second) <= {first, second}
    status, _ = await get(old)  # the connection made before the reload carries on
    assert status.startswith(b"HTTP/1.1 200 ")
    assert peer_serial(peer_der(old)) == first
    # A broken pair (a key that is not the certificate's) is not loaded: the last good one
    # stays.
    _, key_pem, _ = tls.ca.issue("app.example.com")
    await asyncio.to_thread(Path(key).write_bytes, key_pem)
    await until(lambda: "TLS certificates not reloaded" in caplog.text)
    conn = await tls.connect(port)
    assert peer_serial(peer_der(conn)) == second


async def test_request_over_tls_is_held_for_a_cold_backend(tls: Tls) -> None:
    target = make_target()
    interceptor = await tls.start(tls_certificates=(tls.pair(),))
    interceptor.set_router(HostRouter({"*": target}))
    conn = await tls.connect(interceptor.proxy_port)
    answer = asyncio.create_task(get(conn, "/echo?cold=1"))
    await until(
        lambda: (
            interceptor.counts().get(target.key) is not None
            and interceptor.counts()[target.key].held == 1
        )
    )
    assert not answer.done()
    interceptor.set_endpoints({backend_key(target): [tls.backend.addr]})
    status, echo = await answer
    assert status.startswith(b"HTTP/1.1 200 ")
    assert echo["path"] == "/echo?cold=1"
    assert forwarded_proto(echo) == "https"


async def test_a_secret_volume_updated_by_the_kubelet_is_reloaded(tls: Tls) -> None:
    """A Secret mounted as a volume: the kubelet writes a new timestamped folder and swaps the
    ``..data`` link to it in one rename; the file names stay links through it."""
    volume = tls.dir / "secret"
    volume.mkdir()

    def publish(version: str) -> int:
        folder = volume / f"..{version}"
        folder.mkdir()
        cert, key, serial = tls.ca.issue("app.example.com")
        (folder / "tls.crt").write_bytes(cert)
        (folder / "tls.key").write_bytes(key)
        (volume / "..data_tmp").symlink_to(folder.name)
        (volume / "..data_tmp").rename(volume / "..data")
        return serial

    first = await asyncio.to_thread(publish, "v1")
    for name in ("tls.crt", "tls.key"):
        (volume / name).symlink_to(f"..data/{name}")
    pair = (str(volume / "tls.crt"), str(volume / "tls.key"))
    port = (await tls.proxy(pair, tls_reload_interval=0.05)).proxy_port
    old = await tls.connect(port)
    assert peer_serial(peer_der(old)) == first
    second = await asyncio.to_thread(publish, "v2")
    assert await tls.new_connections_get(port, second) <= {first, second}
    status, _ = await get(old)
    assert status.startswith(b"HTTP/1.1 200 ")


async def test_a_handshake_never_finished_is_closed_at_the_header_read_timeout(tls: Tls) -> None:
    port = (await tls.proxy(header_read_timeout=0.3)).proxy_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # TCP only, no ClientHello
    try:
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed by the interceptor
    finally:
        writer.close()
