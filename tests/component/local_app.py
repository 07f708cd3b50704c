"""A workload for local-mode tests: answers with its pid; can crash, or linger after SIGTERM.

python3 local_app.py --port P [--crash] [--term-delay S] [--startup-delay S] [--child]
    [--tag T] [--say TEXT]

``--child`` starts a child process that only sleeps (its pid is in each answer, as ``child``);
``--tag`` is echoed in each answer.

``GET /events`` is a server-sent event stream (an event every 0.1 s until the client goes);
a WebSocket upgrade on any path is accepted and held open, echoing nothing, until the client
closes it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

EXTRA: dict[str, object] = {}  # more fields of every answer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the stdlib's 5 refuses a burst of released requests


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are separate writes

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            self._websocket()
            return
        if self.path == "/events":
            self._events()
            return
        delay = float(self.headers.get("X-Delay", "0"))
        time.sleep(delay)
        body = json.dumps({"pid": os.getpid(), "path": self.path, **EXTRA}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        n = 0
        try:
            while True:
                n += 1
                self.wfile.write(f"data: {n}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            return  # the client went away

    def _websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1((key + guid).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        try:
            while self.rfile.read1(65536):  # frames are read and dropped until the close
                pass
        except OSError:
            return

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--crash", action="store_true")
    ap.add_argument("--term-delay", type=float, default=0.0)
    ap.add_argument("--startup-delay", type=float, default=0.0)
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--tag", default="")
    ap.add_argument("--say", default="", help="print this line, then one on stderr, at start")
    args = ap.parse_args()
    if args.crash:
        sys.exit(3)
    EXTRA["tag"] = args.tag
    if args.say:
        print(args.say, flush=True)
        print(f"{args.say} (stderr)", file=sys.stderr, flush=True)
    if args.child:
        sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
        EXTRA["child"] = subprocess.Popen(sleeper).pid
    time.sleep(args.startup_delay)
    server = Server(("127.0.0.1", args.port), Handler)

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        # Keep serving for a while, like an application finishing its work before exiting.
        def later() -> None:
            time.sleep(args.term_delay)
            os._exit(0)

        threading.Thread(target=later, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    server.serve_forever()


if __name__ == "__main__":
    main()
