"""The component tier's fixtures: every test runs on uvloop (as every component does in
production), with an aiohttp client session, interceptors and a backend. The helpers they use
are in tests/interceptor_helpers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import uvloop
from pytest_asyncio.plugin import LoopFactory

from tests.interceptor_helpers import TEST_SETTINGS, Backend, StartInterceptor
from wakeway.interceptor import Interceptor


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    """Every async test of this tier, and its fixtures, on one uvloop loop."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


@pytest.fixture
async def start_interceptor() -> AsyncIterator[StartInterceptor]:
    """Start interceptors with TEST_SETTINGS (overridable by keyword); stopped at teardown."""
    started: list[Interceptor] = []

    async def start(**overrides: Any) -> Interceptor:
        interceptor = Interceptor(replace(TEST_SETTINGS, **overrides))
        await interceptor.start()
        started.append(interceptor)
        return interceptor

    yield start
    for interceptor in started:
        await interceptor.drain_and_stop(drain_timeout=0.5)


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    b = Backend()
    await b.start()
    yield b
    for event in b.gates.values():
        event.set()
    await b.stop()
