"""Coverage-guided fuzzing of the interceptor's request path with atheris (not run by pytest).

Arbitrary bytes go to a real interceptor on 127.0.0.1 in front of the recording backend
(tests/component/recording_backend.py); then the client half-closes. Checked for every input:
no exception escapes a protocol callback, everything sent upstream parses strictly (one
Host, one framing, no stray bytes in a field), and no more complete requests reach the backend
than the input has request lines. The model-based tests in
tests/component/test_interceptor_fuzz.py check the answers; this looks for the inputs nobody
thought of. atheris is not a dependency:

    pip install --target /tmp/atheris atheris
    PYTHONPATH=/tmp/atheris:. .venv/bin/python tests/fuzz/fuzz_interceptor.py -max_total_time=300
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from dataclasses import replace
from typing import Any

import uvloop

from tests.component.recording_backend import RecordingBackend
from tests.interceptor_helpers import TEST_SETTINGS, HostRouter, backend_key, make_target, until
from wakeway.interceptor import Interceptor

LOOP = uvloop.new_event_loop()
BACKEND = RecordingBackend()
INTERCEPTOR = Interceptor(
    replace(TEST_SETTINGS, header_read_timeout=0.5, response_header_timeout=1.0)
)
ERRORS: list[str] = []


async def _start() -> None:
    await BACKEND.start()
    await INTERCEPTOR.start()
    target = make_target()
    INTERCEPTOR.set_router(HostRouter({"*": target}))
    INTERCEPTOR.set_endpoints({backend_key(target): [BACKEND.addr]})


def _on_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    ERRORS.append(str(context.get("exception") or context.get("message")))


async def _send(data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", INTERCEPTOR.proxy_port)
    try:
        writer.write(data)
        writer.write_eof()
        async with asyncio.timeout(3):
            while await reader.read(65536):
                pass
    except (ConnectionError, RuntimeError):
        pass
    finally:
        writer.close()
    state = INTERCEPTOR._require_state()
    await until(lambda: not state.connections and not BACKEND.busy, within=3)


def one_input(data: bytes) -> None:
    BACKEND.forwarded.clear()
    BACKEND.errors.clear()
    LOOP.run_until_complete(_send(data))
    assert not ERRORS, ERRORS
    assert not BACKEND.errors, (data, BACKEND.errors)
    # Every request forwarded needs a request line of its own in the input.
    assert len(BACKEND.forwarded) <= data.count(b" HTTP/1."), (data, BACKEND.forwarded)


def main() -> None:
    atheris: Any = importlib.import_module("atheris")  # optional: not a dependency

    LOOP.set_exception_handler(_on_error)
    LOOP.run_until_complete(_start())
    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
