"""The workload the locust scenarios wake and put to sleep: a small stdlib HTTP server.

    python3 workload.py --port P [--startup-delay S]

Answers every GET with a short JSON body (its pid and the path). Unlike the demo app it turns
Nagle's algorithm off: a handler that sends headers and body in two writes otherwise waits for
the peer's delayed ACK on a kept-alive connection, about 40 ms per request on Linux, which would
swamp the latency this test is about.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of released requests arrives at once


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = json.dumps({"pid": os.getpid(), "path": self.path}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--startup-delay", type=float, default=0.0)
    args = ap.parse_args()
    time.sleep(args.startup_delay)  # stands in for an application's start-up work
    server = Server(("127.0.0.1", args.port), Handler)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
