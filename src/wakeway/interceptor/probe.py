"""Early probes: catch the moment a starting pod accepts connections.

A held request waits for its backend's first ready endpoint. In Kubernetes that endpoint is
listed as not ready as soon as its pod has an address; it turns ready only after the kubelet's
next readiness probe passes, the kubelet writes the pod's status, the EndpointSlice controller
rewrites the slice and the watch delivers it: tens of milliseconds on an idle cluster, up to a
probe period (ten seconds by default) after the workload could answer. When early probes are on
(``early_probe_interval``), the interceptor connects to the starting endpoints of every backend
it holds requests for, every interval, and forwards to the first that accepts.

Only for workloads whose port accepts connections once they can serve (a readiness probe that
is a TCP check, or none): traffic reaches the pod before Kubernetes calls it ready. Endpoints
that are terminating are never probed. A probe connection is closed at once, unused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from .upstream import Address

# At most this many starting endpoints of one backend are probed at once (a Deployment scaled
# from zero to many would otherwise get a burst of connections every interval).
MAX_PROBED = 8

Wanted = Callable[[str], Sequence[Address]]
Found = Callable[[str, Address], None]


class EarlyProbes:
    """One probing task per backend while it has held requests, no ready endpoint and starting
    endpoints (``wanted`` says which, asked again every round); ``found(backend, address)`` is
    called on the loop when one accepts, and that backend's task ends."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        timeout: float,
        wanted: Wanted,
        found: Found,
    ) -> None:
        self.loop = loop
        self.interval = interval
        self.timeout = timeout
        self._wanted = wanted
        self._found = found
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.probes = 0  # connection attempts made, for the metrics and the tests

    def start(self, backend: str) -> None:
        """Probe ``backend`` unless that is under way already (its task stops by itself)."""
        if backend not in self._tasks and self._wanted(backend):
            self._tasks[backend] = self.loop.create_task(self._run(backend))

    @property
    def probing(self) -> list[str]:
        return list(self._tasks)

    async def _run(self, backend: str) -> None:
        try:
            while addresses := self._wanted(backend)[:MAX_PROBED]:
                accepted = await asyncio.gather(*(self._accepts(a) for a in addresses))
                winner = next((a for a, ok in zip(addresses, accepted, strict=True) if ok), None)
                if winner is not None:
                    del self._tasks[backend]
                    self._found(backend, winner)
                    return
                await asyncio.sleep(self.interval)
        finally:
            self._tasks.pop(backend, None)

    async def _accepts(self, addr: Address) -> bool:
        self.probes += 1
        try:
            async with asyncio.timeout(self.timeout):
                transport, _ = await self.loop.create_connection(asyncio.Protocol, *addr)
        except (OSError, TimeoutError):
            return False
        transport.close()
        return True

    def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
