"""A small demo workload: answers every request with its name, its pid and how long it has run.

    python3 app.py --port 8000 --name hello [--startup-delay 0.5]

Standard library only, so it runs anywhere local mode runs. It also serves /events, a
server-sent-events stream of five ticks, to show that streaming passes through the interceptor.
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
    request_queue_size = 1024  # the stdlib's 5 refuses a burst of released requests


STARTED = time.monotonic()


def handler_for(name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # head and body are separate writes

        def do_GET(self) -> None:
            if self.path.split("?")[0].endswith("/events"):
                self._events()
                return
            body = (
                json.dumps(
                    {
                        "workload": name,
                        "pid": os.getpid(),
                        "path": self.path,
                        "host": self.headers.get("Host"),
                        "uptime_s": round(time.monotonic() - STARTED, 3),
                    }
                ).encode()
                + b"\n"
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def _events(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(5):
                self.wfile.write(f"data: {name} tick {i}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.2)
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass  # the interceptor logs; a quiet demo app keeps the terminal readable

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="demo")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--startup-delay", type=float, default=0.0)
    args = ap.parse_args()
    time.sleep(args.startup_delay)  # stands in for a real application's start-up work
    server = Server((args.host, args.port), handler_for(args.name))
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
