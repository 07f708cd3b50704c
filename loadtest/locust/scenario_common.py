"""Shared by the locust scenarios: the user that hits local mode, and a per-request sample log.

Locust's own CSVs aggregate (its "current" percentiles span a 10 s window), which hides a cold
start; so every request is also written to ``--samples-file`` as one CSV row (start time, latency,
status, whether wakeway marked it a cold start) for the latency-over-time plot.
"""

from __future__ import annotations

import csv
import time
from typing import IO, Any

from locust.env import Environment

from locust import FastHttpUser, events, task

COLD_HEADER = "X-Wakeway-Cold-Start"
SAMPLE_FIELDS = ["start", "latency_ms", "status", "cold", "error"]


class SampleLog:
    def __init__(self) -> None:
        self.file: IO[str] | None = None
        self.writer: Any = None

    def open(self, path: str) -> None:
        if self.file is not None:
            return  # test_start fires again when a load shape brings users back
        self.file = open(path, "w", newline="")  # noqa: SIM115 - closed at test stop
        self.writer = csv.writer(self.file)
        self.writer.writerow(SAMPLE_FIELDS)

    def write(self, row: list[object]) -> None:
        if self.writer is not None:
            self.writer.writerow(row)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
            self.writer = None


SAMPLES = SampleLog()


def _add_options(parser: Any) -> None:
    parser.add_argument("--samples-file", default="", help="CSV of every request (start, latency)")
    parser.add_argument("--on-seconds", type=float, default=8.0, help="wakesleep: burst length")
    parser.add_argument("--off-seconds", type=float, default=6.0, help="wakesleep: idle gap")
    parser.add_argument("--user-rate", type=float, default=5.0, help="requests/s per user")


def _open_samples(environment: Environment, **_kw: Any) -> None:
    path = getattr(environment.parsed_options, "samples_file", "")
    if path:
        SAMPLES.open(path)


def _close_samples(environment: Environment, **_kw: Any) -> None:
    SAMPLES.close()


def _record(
    response_time: float,
    response: Any = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_kw: Any,
) -> None:
    start = start_time if start_time is not None else time.time() - response_time / 1000
    status = getattr(response, "status_code", 0) or 0
    headers = getattr(response, "headers", None) or {}
    cold = headers.get(COLD_HEADER, "") if status else ""
    error = "" if exception is None else f"{type(exception).__name__}: {exception}"[:200]
    SAMPLES.write([f"{start:.6f}", f"{response_time:.3f}", status, cold, error])


def listen(hook: Any, handler: Any) -> None:
    """``hook.add_listener`` is untyped; register through Any instead of a decorator."""
    hook.add_listener(handler)


listen(events.init_command_line_parser, _add_options)
listen(events.test_start, _open_samples)
listen(events.quitting, _close_samples)
listen(events.request, _record)


class WakewayUser(FastHttpUser):
    """GET / on local mode; each scenario sets the pacing."""

    abstract = True
    # A held request waits for the workload's start: keep the client's timeout well above it.
    network_timeout = 30.0
    connection_timeout = 30.0

    @task
    def get_root(self) -> None:
        with self.client.get("/", name="/", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
