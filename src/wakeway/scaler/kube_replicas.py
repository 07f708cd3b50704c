"""Interceptor replicas in Kubernetes: the serving endpoints of the interceptor admin Service.

A headless admin Service selects every interceptor pod; its EndpointSlices list each pod's
address and conditions. Reading them through an informer means a new replica is subscribed to
the moment it is ready, and a deleted one is let go the moment its endpoint goes. A replica that
is shutting down is no longer ready but still serving while it drains (its held and in-flight
requests still count), so serving endpoints are followed, not only ready ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from wakeway.kube import Informer, Kube
from wakeway.kube.resources import ENDPOINTSLICES
from wakeway.model.service import SERVICE_NAME_LABEL, EndpointSlice, parse_endpoint_slice


class KubeReplicas:
    def __init__(self, kubeconfig: str | None, namespace: str, service: str, port: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.service = service
        self.port = port  # the admin port's name, or its number

    def addresses(self, slices: list[EndpointSlice]) -> frozenset[str]:
        out: set[str] = set()
        for s in slices:
            port = next(
                (p.port for p in s.ports if p.name == self.port or str(p.port) == self.port), None
            )
            if port is not None:
                out.update(f"{ip}:{port}" for ip in s.serving_addresses)
        return frozenset(out)

    async def watch(self) -> AsyncIterator[frozenset[str]]:
        kube = await Kube.connect(self.kubeconfig)
        informer: Informer[EndpointSlice] = Informer(
            kube,
            ENDPOINTSLICES,
            parse_endpoint_slice,
            namespace=self.namespace,
            label_selector=f"{SERVICE_NAME_LABEL}={self.service}",
        )
        changed = asyncio.Event()
        informer.add_handler(lambda _key: changed.set())
        informer.start()
        try:
            await informer.synced.wait()
            last: frozenset[str] | None = None
            while True:
                changed.clear()
                current = self.addresses(informer.values())
                if current != last:
                    last = current
                    yield current
                await changed.wait()
        finally:
            await informer.stop()
            await kube.close()
