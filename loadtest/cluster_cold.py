"""What the cold-start benchmarks on the harness cluster share (bench_peer, bench_chain): one cold
request from inside the network namespace, a workload brought back to zero, and a bounded wait
on a condition while the programs under test are watched for dying."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from tests.cluster.harness.processes import Proc

from wakeway.kube import Kube
from wakeway.kube.resources import DEPLOYMENTS, ENDPOINTSLICES, Resource

PODS = Resource("", "v1", "pods", "Pod")


def cold_request(port: int, host: str, timeout: float = 60.0) -> tuple[float, float, int]:
    """Runs inside the namespace: one GET to 127.0.0.1:``port`` for ``host``; the
    (sent, first byte) perf_counter times and the status (0: no status line). ``timeout``
    bounds the connect and each read."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        sent = time.perf_counter()
        s.sendall(f"GET /b HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        rest = s.recv(1)
        first = time.perf_counter()
        while chunk := s.recv(65536):
            rest += chunk
    status = rest[9:12]
    return sent, first, int(status) if status.isdigit() else 0


async def at_zero(
    kube: Kube, ns: str, name: str, *, scale: bool = True, within: float = 60.0
) -> None:
    """Scales the Deployment ``name`` to zero (``scale``: else someone else does) and waits
    until its pods are gone and its Service's endpoints are empty."""
    if scale:
        await kube.set_scale(DEPLOYMENTS, ns, name, 0)
    deadline = time.monotonic() + within
    while True:
        replicas = (await kube.get_scale(DEPLOYMENTS, ns, name)).replicas
        pods = await kube.list(PODS, ns)
        slices = await kube.list(ENDPOINTSLICES, ns)
        endpoints = [
            e
            for s in slices.items
            if (s["metadata"].get("labels") or {}).get("kubernetes.io/service-name") == name
            for e in s.get("endpoints") or []
        ]
        mine = [p for p in pods.items if p["metadata"]["name"].startswith(f"{name}-")]
        if replicas == 0 and not mine and not endpoints:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{ns}/{name} did not go back to zero in {within:g} s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # the interceptors' informers have seen the empty slice by now


def wait_for(what: str, check: Callable[[], bool], within: float, procs: dict[str, Proc]) -> None:
    """Until ``check()``; fails at once, with its log's tail, when one of ``procs`` exits."""
    deadline = time.monotonic() + within
    while not check():
        for name, proc in procs.items():
            if not proc.alive():
                raise RuntimeError(f"{name} exited:\n{proc.tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {n}\n{p.tail(10)}" for n, p in procs.items())
            raise RuntimeError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)
