"""HTTP/2 and gRPC load generation for the peer benchmark: argv for h2bench, and its results.

h2bench (loadtest/h2bench, a Go program built and cached by ``scripts/interop-binaries
h2bench``) drives h2c (prior knowledge) and gRPC unary load, closed loop (uncapped) or open loop
at a fixed rate, and serves the gRPC backend; a Python generator would be the bottleneck at these
rates. It prints one JSON object; :func:`parse` checks it and :func:`uncapped` turns a closed-loop
run into requests per second, refusing any error as ``wrk_result`` does for wrk.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

H2_CONNECTIONS = 4  # TCP connections per run; HTTP/2 multiplexes the rest
H2_STREAMS = 16  # closed loop: requests in flight per connection (64 in all, as wrk's -c64)


@dataclass(frozen=True)
class H2Result:
    sent: int
    ok: int
    errors: int  # non-200 answers, gRPC errors, failed or timed-out requests
    error_samples: list[str]
    dials: int  # TCP connections the generator opened
    elapsed: float  # seconds
    latencies: list[float]  # seconds, one per successful request (open loop only)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed


def _count(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"h2bench result: {key} is {value!r}, not a count")
    return value


def parse(text: str, *, open_loop: bool) -> H2Result:
    """h2bench's JSON output, checked for consistency (every request sent is accounted for;
    in open loop, one latency per successful request)."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ValueError(f"h2bench result is not JSON: {text[:200]!r}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"h2bench result is not an object: {text[:200]!r}")
    sent, ok, errors, dials = (_count(doc, k) for k in ("sent", "ok", "errors", "dials"))
    if ok + errors != sent:
        raise ValueError(f"h2bench result: {ok} ok + {errors} errors != {sent} sent")
    elapsed = doc.get("elapsed")
    if not isinstance(elapsed, int | float) or not elapsed > 0 or math.isinf(elapsed):
        raise ValueError(f"h2bench result: elapsed is {elapsed!r}")
    latencies = doc.get("latencies") or []
    if not isinstance(latencies, list) or not all(
        isinstance(v, int | float) and 0 <= v < 3600 for v in latencies
    ):
        raise ValueError("h2bench result: latencies are not a list of seconds")
    if open_loop and len(latencies) != ok:
        raise ValueError(f"h2bench result: {len(latencies)} latencies for {ok} requests")
    samples = doc.get("error_samples") or []
    return H2Result(sent, ok, errors, [str(s) for s in samples], dials, float(elapsed), latencies)


def uncapped(result: H2Result, what: str, connections: int) -> float:
    """Requests/s of a closed-loop run; an error or a connection beyond ``connections`` (the
    proxy closed one) is a failure, as any error is for wrk."""
    if result.errors:
        raise RuntimeError(
            f"h2bench saw {result.errors} errors of {result.sent} on {what}: {result.error_samples}"
        )
    if result.dials != connections:
        raise RuntimeError(
            f"h2bench opened {result.dials} connections on {what}, not {connections}"
        )
    return result.rps


def h2c_argv(
    exe: Path,
    url: str,
    host: str | None,
    seconds: float,
    *,
    rate: float | None = None,
    connections: int = H2_CONNECTIONS,
    streams: int = H2_STREAMS,
) -> list[str]:
    """h2c GETs of ``url``: closed loop (``streams`` in flight per connection) or, with
    ``rate``, open loop."""
    argv = [str(exe), "h2c", "-url", url, "-connections", str(connections)]
    argv += ["-seconds", f"{seconds:g}"]
    argv += ["-rate", f"{rate:g}"] if rate else ["-streams", str(streams)]
    return argv + (["-host", host] if host else [])


def grpc_argv(
    exe: Path,
    target: str,
    host: str | None,
    rate: float,
    seconds: float,
    connections: int = H2_CONNECTIONS,
) -> list[str]:
    """gRPC unary calls to ``target`` (ADDR:PORT), open loop at ``rate``."""
    argv = [str(exe), "grpc", "-target", target, "-connections", str(connections)]
    argv += ["-rate", f"{rate:g}", "-seconds", f"{seconds:g}"]
    return argv + (["-host", host] if host else [])
