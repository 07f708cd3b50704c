"""The interceptor's access log: one JSON line per finished request, written off the loop.

The event loop only puts a tuple of raw values on a bounded queue (no formatting, no I/O); a
writer thread formats and writes the lines. When the queue is full (the output cannot keep up)
the entry is dropped and counted, never waited for. Off by default: :func:`enable` turns it on
for the process (the ``access_log`` setting), before the interceptor starts.

Fields: ``time`` (UTC, ISO 8601, when the response ended), ``method``, ``host``, ``path`` (no
query string: it may carry secrets), ``status`` (499: the client went away first),
``duration`` (seconds, head to end of response, hold included), ``bytes`` (response body bytes
sent), ``namespace`` and ``name`` (the target; empty when no route matched), ``cold`` (the
request waited at the cold-start gate), ``upstream`` (the backend address, or null).
"""

from __future__ import annotations

import atexit
import json
import queue
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

from wakeway.model.settings import Address, format_address

# time, method, host, path, status, seconds, bytes, target, cold, upstream
Entry = tuple[float, bytes, bytes | None, bytes, int, float, int, str, bool, Address | None]

_STOP = object()


class AccessLog:
    def __init__(self, stream: TextIO, max_pending: int = 10000) -> None:
        self.stream = stream
        self.dropped = 0
        self._queue: queue.Queue[Entry | object] = queue.Queue(max_pending)
        self._thread = threading.Thread(target=self._write, name="access-log", daemon=True)
        self._thread.start()

    def record(self, entry: Entry) -> None:
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (for at most ``timeout``), then stop the writer."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _write(self) -> None:
        q, stream = self._queue, self.stream
        while True:
            item = q.get()
            if item is _STOP:
                stream.flush()
                return
            stream.write(line(item))  # type: ignore[arg-type]
            if q.empty():
                stream.flush()


def line(entry: Entry) -> str:
    """The JSON line (with its newline) for one entry."""
    when, method, host, url, status, seconds, sent, target, cold, upstream = entry
    namespace, _, name = target.partition("/")
    doc: dict[str, Any] = {
        "time": datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds"),
        "method": method.decode("latin-1"),
        "host": None if host is None else host.decode("latin-1"),
        "path": url.partition(b"?")[0].decode("latin-1"),
        "status": status,
        "duration": round(seconds, 6),
        "bytes": sent,
        "namespace": namespace,
        "name": name,
        "cold": cold,
        "upstream": None if upstream is None else format_address(upstream),
    }
    return json.dumps(doc, separators=(",", ":")) + "\n"


_active: AccessLog | None = None


def enable(stream: TextIO | None = None, max_pending: int = 10000) -> AccessLog:
    """Turn the access log on for this process (to stdout unless ``stream``); idempotent."""
    global _active
    if _active is None:
        _active = AccessLog(stream or sys.stdout, max_pending)
        atexit.register(_active.close)
    return _active


def disable() -> None:
    """Turn it off again, writing what is queued first (tests)."""
    global _active
    log, _active = _active, None
    if log is not None:
        log.close()
        atexit.unregister(log.close)


def active() -> AccessLog | None:
    """The access log interceptors started now write to, if it is on."""
    return _active
