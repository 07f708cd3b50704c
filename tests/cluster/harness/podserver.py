"""The "container" the pod runner starts for a pod: an HTTP server on the pod's IP and ports
that answers every request with the pod's name. Stdlib only, so it starts fast.

Behaviour knobs (from pod annotations, passed as flags by the runner): a delay before listening,
a delay before each response, an exit after N responses, and never listening at all.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PR_SET_PDEATHSIG = 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Real servers listen with a deep backlog (Go: somaxconn); the stdlib's 5 drops the
    # handshakes of a burst of requests released at once by a proxy.
    request_queue_size = 1024
    pod_name = ""
    response_delay = 0.0
    crash_after = 0
    served = 0
    lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real backend would
    disable_nagle_algorithm = True  # head and body are separate writes
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.server.response_delay:
            time.sleep(self.server.response_delay)
        body = self.server.pod_name.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Pod-Name", self.server.pod_name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        with self.server.lock:
            self.server.served += 1
            crash = 0 < self.server.crash_after <= self.server.served
        if crash:
            os._exit(1)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--ip", required=True)
    parser.add_argument("--port", type=int, action="append", default=[])
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--response-delay", type=float, default=0.0)
    parser.add_argument("--crash-after", type=int, default=0)
    parser.add_argument("--never-ready", action="store_true")
    parser.add_argument("--shutdown-delay", type=float, default=0.0)
    args = parser.parse_args()

    # Die with the runner, whatever kills it: no server outlives the cluster.
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if args.shutdown_delay:
        # As a workload following Kubernetes' advice (a preStop sleep, or serving on after
        # SIGTERM): it answers until its endpoint has been withdrawn, then exits.
        delay = args.shutdown_delay
        signal.signal(signal.SIGTERM, lambda *_: threading.Timer(delay, os._exit, (0,)).start())
    else:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # at once, requests in flight too

    if args.never_ready:
        signal.pause()  # runs, never listens: Running but never Ready
    time.sleep(args.startup_delay)
    servers = []
    for port in args.port:
        server = _Server((args.ip, port), _Handler)
        server.pod_name = args.name
        server.response_delay = args.response_delay
        server.crash_after = args.crash_after
        servers.append(server)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    if servers:
        servers[0].serve_forever()
    else:
        signal.pause()


if __name__ == "__main__":
    main()
