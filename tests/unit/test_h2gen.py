"""The peer benchmark's HTTP/2 load: h2bench's argv and the checks on its JSON result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from loadtest import h2gen

pytestmark = pytest.mark.unit

EXE = Path("h2bench")


def doc(**changes: Any) -> str:
    base: dict[str, Any] = {
        "sent": 3,
        "ok": 2,
        "errors": 1,
        "error_samples": ["status 503"],
        "dials": 4,
        "elapsed": 0.5,
        "latencies": [0.001, 0.002],
    }
    return json.dumps({**base, **changes})


def test_a_consistent_result_is_read_whole() -> None:
    r = h2gen.parse(doc(), open_loop=True)
    assert (r.sent, r.ok, r.errors, r.dials) == (3, 2, 1, 4)
    assert r.error_samples == ["status 503"]
    assert r.latencies == [0.001, 0.002]
    assert r.rps == 4.0


def test_a_closed_loop_result_has_no_latencies_and_null_samples() -> None:
    r = h2gen.parse(doc(latencies=None, error_samples=None, errors=0, sent=2), open_loop=False)
    assert r.latencies == []
    assert r.error_samples == []


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"ok": 3}, "!= 3 sent"),  # a request counted twice
        ({"sent": -1}, "not a count"),
        ({"dials": True}, "not a count"),
        ({"errors": "1"}, "not a count"),
        ({"elapsed": 0}, "elapsed"),
        ({"elapsed": float("inf")}, "elapsed"),
        ({"latencies": [0.001]}, "1 latencies for 2 requests"),
        ({"latencies": [0.001, -0.5]}, "list of seconds"),
        ({"latencies": "0.001"}, "list of seconds"),
    ],
)
def test_an_inconsistent_result_is_refused(changes: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        h2gen.parse(doc(**changes), open_loop=True)


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", "null"])
def test_output_that_is_not_a_result_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="h2bench result"):
        h2gen.parse(text, open_loop=False)


def test_uncapped_is_ok_per_second() -> None:
    r = h2gen.parse(doc(errors=0, sent=2, latencies=None), open_loop=False)
    assert h2gen.uncapped(r, "direct", 4) == 4.0


def test_uncapped_refuses_any_error() -> None:
    r = h2gen.parse(doc(latencies=None), open_loop=False)
    with pytest.raises(RuntimeError, match=r"1 errors of 3 on wakeway: \['status 503'\]"):
        h2gen.uncapped(r, "wakeway", 4)


def test_uncapped_refuses_a_connection_more_than_asked() -> None:
    r = h2gen.parse(doc(errors=0, sent=2, dials=5, latencies=None), open_loop=False)
    with pytest.raises(RuntimeError, match="opened 5 connections on addon, not 4"):
        h2gen.uncapped(r, "addon", 4)


def test_h2c_argv_closed_and_open_loop() -> None:
    closed = h2gen.h2c_argv(EXE, "http://10.0.0.1:80/b", None, 10)
    assert closed == [
        "h2bench", "h2c", "-url", "http://10.0.0.1:80/b", "-connections", "4",
        "-seconds", "10", "-streams", "16",
    ]  # fmt: skip
    opened = h2gen.h2c_argv(EXE, "http://127.0.0.1:1/b", "h2.test", 2.5, rate=1000, connections=1)
    assert opened == [
        "h2bench", "h2c", "-url", "http://127.0.0.1:1/b", "-connections", "1",
        "-seconds", "2.5", "-rate", "1000", "-host", "h2.test",
    ]  # fmt: skip


def test_grpc_argv() -> None:
    assert h2gen.grpc_argv(EXE, "127.0.0.1:9", "grpc.test", 1000, 10) == [
        "h2bench", "grpc", "-target", "127.0.0.1:9", "-connections", "4",
        "-rate", "1000", "-seconds", "10", "-host", "grpc.test",
    ]  # fmt: skip
