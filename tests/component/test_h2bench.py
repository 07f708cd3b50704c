"""h2bench, the peer benchmark's HTTP/2 load generator (loadtest/h2bench), against real servers:
its own gRPC echo backend, and wakeway's interceptor over h2c; its output as h2gen reads it."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from loadtest import h2gen
from loadtest.bench_proxy_server import spawn_interceptor
from loadtest.common import free_port
from loadtest.loadgen import wait_port

from tests.interop import binaries

pytestmark = pytest.mark.component


@pytest.fixture(scope="module")
def h2bench() -> Path:
    return binaries.required(binaries.h2bench, "h2bench tests")


class Hundred(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"x" * 100)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def interceptor_port() -> Iterator[int]:
    """wakeway's interceptor, every host routed to an HTTP/1.1 backend on loopback."""
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Hundred)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    proc, port, _ = spawn_interceptor(backend.server_address[1])
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        backend.shutdown()
        backend.server_close()


def run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_grpc_unary_calls_to_its_own_echo_server_at_a_fixed_rate(h2bench: Path) -> None:
    port = free_port()
    server = subprocess.Popen([h2bench, "serve-grpc", "-listen", f"127.0.0.1:{port}"])
    try:
        wait_port(port)
        out = run(h2gen.grpc_argv(h2bench, f"127.0.0.1:{port}", "grpc.test", 200, 0.1, 2))
    finally:
        server.terminate()
        server.wait(30)
    r = h2gen.parse(out, open_loop=True)
    assert (r.sent, r.ok, r.errors, r.dials) == (20, 20, 0, 2)
    assert len(r.latencies) == 20


def test_h2c_through_the_interceptor_closed_and_open_loop(
    h2bench: Path, interceptor_port: int
) -> None:
    url = f"http://127.0.0.1:{interceptor_port}/b"
    closed = h2gen.parse(
        run(h2gen.h2c_argv(h2bench, url, "h2.test", 0.2, connections=2, streams=2)),
        open_loop=False,
    )
    assert h2gen.uncapped(closed, "wakeway", 2) > 0
    assert closed.ok > 0
    opened = h2gen.parse(
        run(h2gen.h2c_argv(h2bench, url, "h2.test", 0.1, rate=100, connections=1)),
        open_loop=True,
    )
    assert (opened.sent, opened.ok, opened.dials) == (10, 10, 1)


def test_a_server_that_does_not_speak_h2c_fails_the_run(h2bench: Path) -> None:
    backend = ThreadingHTTPServer(("127.0.0.1", 0), Hundred)  # HTTP/1.1 only
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{backend.server_address[1]}/b"
        argv = h2gen.h2c_argv(h2bench, url, None, 0.1, connections=1, streams=1)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    finally:
        backend.shutdown()
        backend.server_close()
    assert done.returncode == 1
    assert "first request" in done.stderr
