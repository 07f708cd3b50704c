"""Where the interceptor replicas are: a small interface and its static implementation.

A :class:`ReplicaSource` yields the current set of interceptor admin addresses (``host:port``)
each time it changes; the scaler subscribes to the count stream of every address in the latest
set. The Kubernetes implementation (the ready endpoints of the interceptor admin Service's
EndpointSlices, read through ``wakeway.kube``) is one more class with the same method.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Protocol


class ReplicaSource(Protocol):
    def watch(self) -> AsyncIterator[frozenset[str]]:
        """The current set of ``host:port`` admin addresses, then each new set when it changes.

        Runs until cancelled; an empty set means "no replicas" (not "unknown")."""
        ...


class StaticReplicas:
    """A fixed list of addresses (``--interceptors host:port,...``): one set, then nothing."""

    def __init__(self, addresses: Iterable[str]) -> None:
        self.addresses = frozenset(addresses)

    async def watch(self) -> AsyncIterator[frozenset[str]]:
        yield self.addresses
        await asyncio.Event().wait()  # never changes; ends by cancellation


class ReplicaSet:
    """A source whose set is changed by calling :meth:`set` (tests, local mode)."""

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self._current = frozenset(addresses)
        self._changed = asyncio.Event()

    def set(self, addresses: Iterable[str]) -> None:
        self._current = frozenset(addresses)
        self._changed.set()

    async def watch(self) -> AsyncIterator[frozenset[str]]:
        while True:
            self._changed.clear()
            yield self._current
            await self._changed.wait()
